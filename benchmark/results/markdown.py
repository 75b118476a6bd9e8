"""The one markdown table: terminal views pad their cells, step summaries,
review comments and reports write them compact."""


def markdown_table(header, rows, numeric=(), pad=False):
    """Returns a markdown table of `header` and `rows` (sequences of cells,
    shown with str); the columns at the indices in `numeric` are
    right-aligned. With `pad`, every cell is padded to its column's width
    (for a terminal); without, cells are written as they are."""
    numeric = set(numeric)
    rows = [[str(c) for c in r] for r in rows]
    header = [str(c) for c in header]
    if pad:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    else:
        widths = [3] * len(header)

    def line(cells):
        if pad:
            cells = [
                c.rjust(w) if i in numeric else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths))
            ]
        return "| " + " | ".join(cells) + " |"

    rule = [
        "-" * (w - 1) + ":" if i in numeric else "-" * w for i, w in enumerate(widths)
    ]
    rule_line = ("| " + " | ".join(rule) + " |") if pad else "|" + "|".join(rule) + "|"
    return "\n".join([line(header), rule_line, *map(line, rows)])
