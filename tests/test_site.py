"""The web leaderboard (zoo-leaderboard --html, benchmark/report/site.py) in a real
headless browser: Debian's Chromium and chromedriver (installed by `make
system`), driven by Selenium. The site is opened from file://; sorting,
filtering, tabs, seed intervals, provenance and the figures are checked on
the committed leaderboard plus measured rows of three seeds, and a
screenshot is taken. Plus the site's writing rules without a browser:
atomic, never over a folder it did not write, one-line errors."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from benchmark.analyses import create_analysis
from benchmark.report import site
from benchmark.results import leaderboard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD = os.path.join(REPO, "leaderboard.csv")
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _browser_paths():
    browser = next(filter(None, map(shutil.which, CHROMIUM)), None)
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    message = (
        "Chromium and chromedriver are missing; `make system` installs them "
        "(Debian: apt-get install chromium chromium-driver)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI is set, so the browser test must run")
    pytest.skip(message)


def _measured_rows():
    """Two objectives x three seeds of real-looking measured rows."""
    rows = []
    for objective, linear, knn in (
        ("softmax", [0.90, 0.91, 0.92], [0.80, 0.81, 0.79]),
        ("label_smoothing", [0.85, 0.86, 0.85], [0.80, 0.80, 0.81]),
    ):
        for seed in range(3):
            common = dict(
                source="measured",
                handle=f"https://models.example.org/{objective}_seed{seed}.tar.gz",
                module_sha256=f"{seed:02d}" * 32,
                arch="resnet50",
                objective=objective,
                pretrain_dataset="imagenette",
                seed=str(seed),
                split="train->test",
                code_version="abc1234",
                protocol={"l2": "sweep"},
            )
            for evaluation, values in (("linear_probe", linear), ("knn", knn)):
                rows.append(
                    leaderboard.make_row(
                        **common,
                        evaluation=evaluation,
                        dataset="imagefolder:/data/cifar10",
                        metric="accuracy",
                        value=values[seed],
                    )
                )
    return rows


def _cka_folder(folder):
    """A zoo-analyze-style folder with cka.json from the real CKA analysis
    over three modules of four layers (random features, related by layer)."""
    rng = np.random.default_rng(0)
    analysis = create_analysis("cka", batch_size=100)
    layers = {m: [f"block{i}" for i in range(1, 5)] for m in ("a", "b", "c")}
    analysis.start(layers)
    base = rng.normal(size=(300, 16))
    for start in range(0, 300, 100):
        x = base[start : start + 100]
        outputs = {}
        for k, module in enumerate(layers):
            outputs[module] = {
                name: x + (i + k) * 0.7 * rng.normal(size=x.shape)
                for i, name in enumerate(layers[module])
            }
        analysis.update(outputs, None)
    result = analysis.finish({})
    os.makedirs(folder)
    with open(os.path.join(folder, "cka.json"), "w") as f:
        json.dump(result.data, f)
    return folder


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    # The paper's rows of the curated board, beside this test's measured ones
    # (the board's own measured rows have a test of their own).
    rows = [
        r
        for r in leaderboard.read_rows(BOARD)
        if r["source"].startswith(leaderboard.PAPER_PREFIX)
    ]
    board = root / "board.csv"
    leaderboard.append_rows(str(board), rows + _measured_rows())
    analyses = _cka_folder(str(root / "analysis"))
    out = root / "site"
    result = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "zoo-leaderboard"),
            f"--leaderboard={board}",
            f"--html={out}",
            f"--html_analyses={analyses}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "28 configurations, 8 tabs and 3 CKA heatmaps" in result.stdout
    return out, rows


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    path, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = path
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1500,1100",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    yield driver
    driver.quit()


def _rows(driver):
    return driver.find_elements("css selector", "#board tbody tr.config")


def _column(driver, key):
    """The visible rows' values (data-value) of column `key`, in page order."""
    out = []
    for tr in _rows(driver):
        td = tr.find_element("css selector", f'td[data-key="{key}"]')
        value = td.get_attribute("data-value")
        out.append(None if value is None else float(value))
    return out


def _select(driver, name, value):
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", f"filter-{name}")).select_by_value(value)


def test_the_site_sorts_filters_and_shows_provenance_in_a_real_browser(
    built_site, browser, tmp_path
):
    out, paper_rows = built_site
    browser.get((out / "index.html").as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []

    # All 26 paper configurations and the 2 measured ones are there.
    rows = _rows(browser)
    paper = {
        (r["objective"], r["arch"]) for r in paper_rows if r["source"] != "measured"
    }
    assert len(paper) == 26
    shown = {
        (tr.get_attribute("data-objective"), tr.get_attribute("data-arch"))
        for tr in rows
        if tr.get_attribute("data-source") == "paper"
    }
    assert shown == paper
    assert len(rows) == 28
    assert browser.find_element("id", "count").text == "28 of 28 configurations"

    # Default order: linear transfer, best first within each protocol group
    # (the paper's 26 rows, then the 2 measured here, never ranked together,
    # each under a line saying what differs); a click reverses it.
    groups = browser.find_elements("css selector", "#board tbody tr.group")
    assert [g.get_attribute("data-group") for g in groups] == ["A", "B"]
    assert "measured here" in groups[1].text and "reported in a paper" in groups[1].text
    ranks = [td.text for td in browser.find_elements("css selector", "td.rank")]
    assert ranks[:2] == ["1", "2"] and ranks[26:] == ["1", "2"]
    linear = [v for v in _column(browser, "linear_probe") if v is not None]
    assert len(linear) == 28
    for part in (linear[:26], linear[26:]):
        assert part == sorted(part, reverse=True)
    assert linear != sorted(linear, reverse=True)  # the groups are not merged
    header = browser.find_element("css selector", 'th[data-key="linear_probe"]')
    assert header.get_attribute("aria-sort") == "descending"
    header.find_element("tag name", "button").click()
    linear = [v for v in _column(browser, "linear_probe") if v is not None]
    assert linear[:26] == sorted(linear[:26]) and linear[26:] == sorted(linear[26:])
    browser.find_element("css selector", 'th[data-key="r2"] button').click()
    r2 = [v for v in _column(browser, "r2") if v is not None]
    assert r2 == sorted(r2, reverse=True) and len(r2) == 26  # measured: no R^2

    # Filters: arch, then source.
    _select(browser, "arch", "inception_v3")
    rows = _rows(browser)
    assert len(rows) == 9
    assert {tr.get_attribute("data-arch") for tr in rows} == {"inception_v3"}
    _select(browser, "arch", "all")
    _select(browser, "source", "measured")
    rows = _rows(browser)  # sorted by R^2, which neither has: by objective
    assert [tr.get_attribute("data-objective") for tr in rows] == [
        "label_smoothing",
        "softmax",
    ]
    # Seed statistics: mean, 95% t-interval, n; label smoothing's drop of
    # 5.7 points over 3 seeds is significant, its kNN change is not.
    smoothing, softmax = rows
    cell = softmax.find_element("css selector", 'td[data-key="linear_probe"]')
    assert cell.text == "91.0 ± 2.5 (3)"
    cell = smoothing.find_element("css selector", 'td[data-key="linear_probe"]')
    assert cell.text == "85.3 ± 1.4 (3)*"
    assert "p = " in cell.get_attribute("title")
    knn = smoothing.find_element("css selector", 'td[data-key="knn"]').text
    assert knn == "80.3 ± 1.4 (3)"

    # Provenance: a click shows each seed's handle (linked), sha256, code.
    softmax.click()
    detail = browser.find_element("css selector", "#board tr.provenance")
    links = detail.find_elements("tag name", "a")
    assert [a.get_attribute("href") for a in links] == [
        f"https://models.example.org/softmax_seed{s}.tar.gz" for s in range(3)
    ]
    assert "01" * 32 in detail.text and "code abc1234" in detail.text
    assert '{"l2": "sweep"}' in detail.text

    # Tabs: one per evaluation family; Chexpert has its datasets' columns.
    _select(browser, "source", "all")
    tabs = browser.find_elements("css selector", "#tabs button")
    assert [t.get_attribute("data-tab") for t in tabs] == [
        "summary",
        "imagenet_ood",
        "linear_probe",
        "knn",
        "fine_tune",
        "class_separation",
        "chexpert",
        "ranks",
    ]
    tabs[2].click()
    heads = [th.text for th in browser.find_elements("css selector", "#board thead th")]
    assert "cifar10" in heads and "food101" in heads
    # Ranks: mean rank [interval], tiers of tied configurations apart.
    tabs[-1].click()
    cells = browser.find_elements("css selector", 'td[data-key="mean_rank"]')
    assert cells and all("[" in c.text and "]" in c.text for c in cells)
    tiers = browser.find_elements("css selector", "#board tbody tr.group")
    assert len(tiers) >= 3 and "tied within" in tiers[0].text
    tabs[6].click()
    assert tabs[6].get_attribute("aria-selected") == "true"
    chexpert = {
        (r["objective"], r["arch"]) for r in paper_rows if r["evaluation"] == "chexpert"
    }
    assert len(_rows(browser)) == len(chexpert) == 9  # ResNet-50s (Table D.1)

    # Figures: the transfer vs R^2 PNG loads; three CKA heatmaps of 4 x 4.
    image = browser.find_element("id", "figure-transfer")
    assert browser.execute_script("return arguments[0].naturalWidth", image) > 0
    maps = browser.find_elements("css selector", "#heatmaps figure.heatmap")
    assert [(m.get_attribute("data-a"), m.get_attribute("data-b")) for m in maps] == [
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
    ]
    for m in maps:
        assert len(m.find_elements("css selector", ".grid div")) == 16
    assert "Spearman" in browser.find_element("id", "figure").text

    tabs[0].click()
    shot = os.environ.get("ZOO_SITE_SCREENSHOT") or str(tmp_path / "site.png")
    assert browser.save_screenshot(shot)
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(shot) > 20_000


def test_a_submitted_string_stays_text(tmp_path, browser):
    rows = _measured_rows()
    for r in rows:
        r["objective"] = "<img src=x onerror=document.title='owned'>"
    site.write_site(rows, str(tmp_path / "site"))
    browser.get((tmp_path / "site" / "index.html").as_uri())
    assert browser.title == "Loss-transfer zoo leaderboard"
    cell = browser.find_element("css selector", "#board tbody td.objective")
    assert cell.text == rows[0]["objective"]
    assert browser.find_elements("css selector", "#board img") == []


def test_the_curated_boards_measured_rows_stand_apart_by_protocol(tmp_path):
    """The mini-zoo's merged rows: each module under each benchmark config is
    a configuration of its own, in protocol groups apart from the paper's,
    with seed counts; no folder of the machine that measured them."""
    rows = leaderboard.read_rows(BOARD)
    measured = [r for r in rows if r["source"] == leaderboard.MEASURED]
    if not measured:
        pytest.fail("leaderboard.csv holds no measured rows; merge the mini-zoo's")
    assert not any(r["handle"].startswith("/") for r in measured)
    assert not any(
        "/" in r[c] for r in measured for c in ("dataset", "pretrain_dataset")
    )
    out = tmp_path / "site"
    site.write_site(rows, str(out))
    text = (out / "data.js").read_text()
    data = json.loads(text.removeprefix("window.LEADERBOARD = ").rstrip().rstrip(";"))
    from benchmark.report import views

    groups = views.ranking_groups(rows, "linear_probe")
    paper = [g for g in groups if any(c[0].startswith("paper:") for c in g.configs)]
    assert len(paper) == 1 and all(c[0].startswith("paper:") for c in paper[0].configs)
    names = {
        views.display_name(c, views.configurations(rows))
        for c in views.configurations(measured)
    }
    assert {"softmax [mini_zoo]", "softmax [vtab1k]"} <= names
    shown = json.dumps(data)
    assert '"softmax [vtab1k]"' in shown and '"softmax [mini_zoo]"' in shown


def test_the_site_replaces_only_its_own_folder_and_nothing_half_written(tmp_path):
    rows = _measured_rows()
    out = tmp_path / "site"
    site.write_site(rows, str(out))
    first = (out / "data.js").read_text()
    assert first.startswith("window.LEADERBOARD = {")
    site.write_site(rows[:2], str(out))  # a previous site is replaced
    assert (out / "data.js").read_text() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(site.SiteError, match="did not write"):
        site.write_site(rows, str(foreign))
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]

    bad = tmp_path / "analysis"
    bad.mkdir()
    (bad / "cka.json").write_text("{not json")
    before = (out / "data.js").read_text()
    with pytest.raises(site.SiteError, match="not a zoo-analyze cka.json"):
        site.write_site(rows, str(out), analyses=[str(bad)])
    assert (out / "data.js").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis", "mine", "site"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--html={tmp}/file.txt"], "is a file; give a folder"),
        (["--html={tmp}/missing/site"], "does not exist; create it"),
        (
            ["--html={tmp}/site", "--html_analyses={tmp}"],
            "has no cka.json",
        ),
    ],
)
def test_bad_site_arguments_get_one_line(tmp_path, warm, args, message):
    (tmp_path / "file.txt").write_text("x")
    result = warm.run(
        "benchmark.cli.leaderboard",
        f"--leaderboard={BOARD}",
        *[a.format(tmp=tmp_path) for a in args],
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "site").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
