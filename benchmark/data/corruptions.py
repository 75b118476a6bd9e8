"""The 15 ImageNet-C corruptions at 5 severities, for any labelled images.

Written from the descriptions in Hendrycks & Dietterich, "Benchmarking Neural
Network Robustness to Common Corruptions and Perturbations" (ICLR 2019): four
families (noise, blur, weather, digital) of 15 corruptions, each at severities
1-5. Every function here is this project's own numpy/scipy implementation; the
severity parameters follow the published ImageNet-C values where the operation
is the same, and docs/evaluations.md lists where and why they differ (frost
uses a procedural texture instead of photographs; glass blur, elastic
transform and the blur kernels are our renditions; severities are made
monotone: the distance from the clean image grows with severity).

Images are float32 [H, W, 3] in [0, 1] at the resolution they are evaluated
at (the module's). Spatial parameters (blur radii, displacements) are given
for ImageNet-C's 224 px and scaled by min(H, W) / 224. Randomness comes from
a numpy Generator seeded by (seed, image index, corruption), not by severity,
so the five severities of an image share their random draws (a snow field, a
noise pattern grow with severity instead of being redrawn) and the same seed
always gives the same images.
"""

import functools
import math

import numpy as np
import tensorflow as tf
from scipy import ndimage

CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
SEVERITIES = (1, 2, 3, 4, 5)
REFERENCE_SIZE = 224.0

# Severity parameters (severity 1 first). ImageNet-C's values unless noted.
GAUSSIAN_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
SHOT_RATE = (60.0, 25.0, 12.0, 5.0, 3.0)
IMPULSE_AMOUNT = (0.03, 0.06, 0.09, 0.17, 0.27)
DEFOCUS = ((3.0, 0.1), (4.0, 0.5), (6.0, 0.5), (8.0, 0.5), (10.0, 0.5))
# (sigma, max displacement, passes); passes made non-decreasing (ours).
GLASS = ((0.7, 1.0, 2), (0.9, 2.0, 2), (1.0, 2.0, 3), (1.1, 3.0, 3), (1.5, 4.0, 3))
MOTION = ((10.0, 3.0), (15.0, 5.0), (15.0, 8.0), (15.0, 12.0), (20.0, 15.0))
ZOOM_STEPS = ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))
# (mean, std, zoom, threshold, blur radius, blur sigma, image weight)
# Severity 3's threshold and weight lowered from (0.9, 0.7) (ours: monotone).
SNOW = (
    (0.1, 0.3, 3.0, 0.5, 10.0, 4.0, 0.8),
    (0.2, 0.3, 2.0, 0.5, 12.0, 4.0, 0.7),
    (0.55, 0.3, 4.0, 0.85, 12.0, 8.0, 0.68),
    (0.55, 0.3, 4.5, 0.85, 12.0, 8.0, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12.0, 12.0, 0.55),
)
FROST = ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
# (amount, roughness); amounts of severities 4 and 5 raised from 2.5 and 3.0
# (ours: rougher fractals alone made them no farther from the clean image).
FOG = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (3.0, 1.5), (3.5, 1.4))
BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
# Ours: RMS displacement and affine corner jitter, as fractions of the size.
ELASTIC = ((0.004, 0.005), (0.008, 0.01), (0.012, 0.015), (0.018, 0.02), (0.025, 0.025))
ELASTIC_SMOOTHNESS = 0.03  # correlation length of the displacement / size
PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)
JPEG_QUALITY = (25, 18, 15, 10, 7)


def corrupt(image, corruption, severity, seed=0, index=0):
    """Returns `image` ([H, W, 3] in [0, 1]) with `corruption` at `severity`.

    float32 [H, W, 3] in [0, 1]. Deterministic in (seed, index, corruption):
    the random draws do not depend on `severity`.
    """
    if corruption not in CORRUPTIONS:
        raise ValueError(
            f"unknown corruption '{corruption}'; choose one of: "
            f"{', '.join(CORRUPTIONS)}"
        )
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of 1..5, got {severity}")
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"image must be [H, W, 3], got shape {x.shape}")
    rng = np.random.default_rng([seed, index, CORRUPTIONS.index(corruption)])
    out = _FUNCTIONS[corruption](x, severity - 1, rng)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def corrupt_images(images, corruption, severity, seed=0, start=0):
    """Returns [N, H, W, 3] float32: `corrupt` of each image, the i-th with
    index start + i."""
    return np.stack(
        [
            corrupt(image, corruption, severity, seed, start + i)
            for i, image in enumerate(images)
        ]
    )


def _scale(x):
    """Returns the spatial scale of `x` relative to ImageNet-C's 224 px."""
    return min(x.shape[:2]) / REFERENCE_SIZE


# ------------------------------------------------------------------- noise


def gaussian_noise(x, s, rng):
    """Additive N(0, sigma^2) noise per pixel and channel."""
    return x + GAUSSIAN_SIGMA[s] * rng.standard_normal(x.shape)


def shot_noise(x, s, rng):
    """Poisson (photon) noise: Poisson(x * rate) / rate."""
    return rng.poisson(x * SHOT_RATE[s]) / SHOT_RATE[s]


def impulse_noise(x, s, rng):
    """Salt-and-pepper noise: each value becomes 0 or 1 with probability
    amount / 2 each."""
    u = rng.random(x.shape)
    amount = IMPULSE_AMOUNT[s]
    out = np.where(u < amount / 2, 0.0, x)
    return np.where(u > 1.0 - amount / 2, 1.0, out)


# -------------------------------------------------------------------- blur


def _convolve(x, kernel):
    """Returns each channel of `x` convolved with the 2-D `kernel`."""
    return np.stack(
        [ndimage.convolve(x[..., c], kernel, mode="reflect") for c in range(3)], -1
    )


def disk_kernel(radius, alias_sigma):
    """Returns a normalised disk of `radius` px (edges anti-aliased: a pixel's
    weight falls linearly from 1 to 0 over the radius +- 0.5 band), smoothed by a
    Gaussian of `alias_sigma` px (the "defocus" of the ImageNet-C paper)."""
    half = int(math.ceil(radius + 1.5))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    kernel = np.clip(radius + 0.5 - np.hypot(yy, xx), 0.0, 1.0)
    kernel = ndimage.gaussian_filter(kernel, alias_sigma)
    return kernel / kernel.sum()


def defocus_blur(x, s, rng):
    """Convolution with a disk (an out-of-focus lens)."""
    radius, alias = DEFOCUS[s]
    return _convolve(x, disk_kernel(radius * _scale(x), alias))


def glass_blur(x, s, rng):
    """Frosted glass: Gaussian blur, then passes of local pixel scrambling
    (each pixel takes the value at a random offset of at most `delta` px per
    axis, read bilinearly so sub-pixel offsets at low resolution still act),
    then Gaussian blur again. The offsets are drawn once per image and scaled
    by the severity's delta, so the scrambling grows with severity."""
    sigma, delta, passes = GLASS[s]
    scale = _scale(x)
    sigma, delta = sigma * scale, delta * scale
    h, w = x.shape[:2]
    out = ndimage.gaussian_filter(x, (sigma, sigma, 0))
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    offsets = rng.uniform(-1.0, 1.0, size=(GLASS[-1][2], 2, h, w))
    for p in range(passes):
        coords = [rows + offsets[p, 0] * delta, cols + offsets[p, 1] * delta]
        out = np.stack(
            [
                ndimage.map_coordinates(out[..., c], coords, order=1, mode="reflect")
                for c in range(3)
            ],
            -1,
        )
    return ndimage.gaussian_filter(out, (sigma, sigma, 0))


def motion_kernel(radius, sigma, angle):
    """Returns a normalised one-sided line kernel: weights exp(-d^2 / 2 sigma^2)
    at distances d in [0, radius] px along `angle` (degrees), splatted
    bilinearly onto the pixel grid (ImageMagick's motion blur shape)."""
    half = int(math.ceil(radius)) + 1
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    distances = np.linspace(0.0, radius, max(2, int(math.ceil(radius * 4)) + 1))
    weights = np.exp(-(distances**2) / (2.0 * max(sigma, 1e-6) ** 2))
    theta = math.radians(angle)
    ys = half - distances * math.sin(theta)
    xs = half + distances * math.cos(theta)
    _splat(kernel, ys, xs, weights)
    return kernel / kernel.sum()


def motion_blur(x, s, rng):
    """Convolution with a line kernel at a random angle in [-45, 45] degrees."""
    radius, sigma = MOTION[s]
    scale = _scale(x)
    angle = rng.uniform(-45.0, 45.0)
    return _convolve(x, motion_kernel(radius * scale, sigma * scale, angle))


def zoom(x, factor):
    """Returns `x` magnified by `factor` about its centre, cropped to its size
    (bilinear)."""
    h, w = x.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    coords = [cy + (rows - cy) / factor, cx + (cols - cx) / factor]
    return np.stack(
        [
            ndimage.map_coordinates(x[..., c], coords, order=1, mode="nearest")
            for c in range(x.shape[-1])
        ],
        -1,
    )


def zoom_blur(x, s, rng):
    """The mean of the image and copies zoomed by 1 + k * step (a camera moving
    toward the object during the exposure)."""
    stop, step = ZOOM_STEPS[s]
    factors = np.arange(1.0, stop, step)
    return (x + sum(zoom(x, f) for f in factors)) / (len(factors) + 1)


# ----------------------------------------------------------------- weather


def snow(x, s, rng):
    """Snow: a thresholded, zoomed Gaussian field motion-blurred into flakes
    falling at a random angle, added (with its 180-degree rotation) to the
    image, which is first washed toward a brightened grey."""
    mean, std, factor, threshold, radius, sigma, weight = SNOW[s]
    h, w = x.shape[:2]
    scale = _scale(x)
    field = mean + std * rng.standard_normal((h, w))
    flakes = zoom(field[..., None], factor)[..., 0]
    flakes = np.where(flakes < threshold, 0.0, flakes)
    angle = rng.uniform(-135.0, -45.0)
    kernel = motion_kernel(radius * scale, sigma * scale, angle)
    flakes = ndimage.convolve(flakes, kernel, mode="reflect")[..., None]
    gray = (x @ np.array([0.299, 0.587, 0.114]))[..., None]
    washed = weight * x + (1 - weight) * np.maximum(x, gray * 1.5 + 0.5)
    return washed + flakes + np.rot90(flakes, 2)


@functools.lru_cache(maxsize=8)
def _plasma_size(size):
    """Returns the smallest power of two >= size (diamond-square grid side)."""
    return 1 << max(1, int(math.ceil(math.log2(max(size, 2)))))


def plasma_fractal(size, roughness, rng):
    """Returns a [size, size] diamond-square plasma fractal in [0, 1].

    Midpoint displacement on a power-of-two grid (wrapping at the edges): each
    halving of the step adds uniform noise whose amplitude is divided by
    `roughness` (ImageNet-C's "wibble decay"; smaller = rougher fog).
    """
    n = _plasma_size(size)
    grid = np.zeros((n, n))
    step, amplitude = n, 100.0
    draws = iter(rng.uniform(-1.0, 1.0, size=(2 * int(math.log2(n)) + 2, n, n)))
    while step >= 2:
        half = step // 2
        amplitude /= roughness
        # Diamond: centre of each square = mean of its 4 corners + noise.
        corners = grid[0:n:step, 0:n:step]
        mean = (
            corners
            + np.roll(corners, -1, 0)
            + np.roll(corners, -1, 1)
            + np.roll(np.roll(corners, -1, 0), -1, 1)
        ) / 4.0
        noise = next(draws)[: n // step, : n // step]
        grid[half:n:step, half:n:step] = mean + amplitude * noise
        # Square: edge midpoints = mean of their 4 neighbours (2 corners, 2
        # centres) + noise.
        centres = grid[half:n:step, half:n:step]
        noise = next(draws)
        top = (corners + np.roll(corners, -1, 1) + centres + np.roll(centres, 1, 0)) / 4
        left = (
            corners + np.roll(corners, -1, 0) + centres + np.roll(centres, 1, 1)
        ) / 4
        grid[0:n:step, half:n:step] = top + amplitude * noise[: n // step, : n // step]
        grid[half:n:step, 0:n:step] = (
            left + amplitude * noise[n // step :][: n // step, : n // step]
        )
        step = half
    grid = grid[:size, :size]
    grid -= grid.min()
    return grid / max(grid.max(), 1e-12)


def fog(x, s, rng):
    """Fog: a plasma fractal added to the image, then the result rescaled so
    the image's maximum maps back to itself: (x + a f) * max / (max + a)."""
    amount, roughness = FOG[s]
    h, w = x.shape[:2]
    field = plasma_fractal(max(h, w), roughness, rng)[:h, :w, None]
    top = x.max()
    return (x + amount * field) * top / (top + amount)


def frost_texture(h, w, rng):
    """Returns a procedural frost layer [h, w, 3] in [0, 1].

    ImageNet-C blends photographs of frost on glass; we synthesise one
    instead: a patchy density map (a plasma fractal, soft-thresholded) carrying
    random ice needles (anti-aliased line segments with side branches at
    +-60 degrees, brightness in [0.3, 1]), lightly blurred and tinted
    blue-white.
    """
    density = plasma_fractal(max(h, w), 1.6, rng)[:h, :w]
    density = np.clip((density - 0.35) / 0.4, 0.0, 1.0)
    needles = np.zeros((h, w))
    size = min(h, w)
    count = int(12 + 0.02 * h * w**0.5)
    for _ in range(count):
        y, x0 = rng.uniform(0, h), rng.uniform(0, w)
        angle = rng.uniform(0, 2 * math.pi)
        length = rng.uniform(0.05, 0.3) * size
        brightness = rng.uniform(0.3, 1.0)
        _draw_line(needles, y, x0, angle, length, brightness)
        for t in rng.uniform(0.2, 0.9, size=rng.integers(1, 4)):
            by, bx = y + t * length * math.sin(angle), x0 + t * length * math.cos(angle)
            side = angle + rng.choice([-1, 1]) * math.pi / 3
            _draw_line(needles, by, bx, side, 0.3 * length * (1 - t), brightness)
    needles = ndimage.gaussian_filter(
        np.clip(needles, 0, 1), 0.5 * max(1.0, size / 112)
    )
    layer = np.clip(0.55 * density + needles * (0.4 + density), 0.0, 1.0)
    return layer[..., None] * np.array([0.86, 0.93, 1.0])


def _draw_line(canvas, y, x, angle, length, value):
    """Adds an anti-aliased segment (bilinear splats every 1/2 px) to `canvas`."""
    h, w = canvas.shape
    steps = np.linspace(0.0, length, max(2, int(length * 2)))
    ys, xs = y + steps * math.sin(angle), x + steps * math.cos(angle)
    inside = (ys >= 0) & (ys < h - 1) & (xs >= 0) & (xs < w - 1)
    ys, xs = ys[inside], xs[inside]
    _splat(canvas, ys, xs, value)


def frost(x, s, rng):
    """Frost: weight * image + strength * frost texture."""
    weight, strength = FROST[s]
    return weight * x + strength * frost_texture(x.shape[0], x.shape[1], rng)


# ----------------------------------------------------------------- digital


def brightness(x, s, rng):
    """Adds c to the HSV value channel (clipped at 1), hue and saturation kept:
    since each RGB channel is V times a function of (H, S), that scales RGB by
    V' / V (black pixels become grey V')."""
    value = x.max(axis=-1, keepdims=True)
    new_value = np.minimum(value + BRIGHTNESS[s], 1.0)
    ratio = np.divide(new_value, value, out=np.zeros_like(value), where=value > 0)
    return np.where(value > 0, x * ratio, new_value)


def contrast(x, s, rng):
    """Shrinks each channel toward its image mean: (x - mean) * c + mean."""
    mean = x.mean(axis=(0, 1), keepdims=True)
    return (x - mean) * CONTRAST[s] + mean


def elastic_transform(x, s, rng):
    """Elastic warp: a random affine jitter of the corners plus a smooth random
    displacement field (white noise Gaussian-smoothed over 3% of the size,
    scaled to the severity's RMS displacement), resampled bilinearly."""
    displacement, jitter = ELASTIC[s]
    h, w = x.shape[:2]
    size = min(h, w)
    smooth = max(1.0, ELASTIC_SMOOTHNESS * size)
    fields = []
    for noise in rng.uniform(-1.0, 1.0, size=(2, h, w)):
        field = ndimage.gaussian_filter(noise, smooth, mode="reflect")
        fields.append(field / max(np.sqrt(np.mean(field**2)), 1e-12))
    # Affine: a random linear map (near identity) about the centre.
    matrix = rng.uniform(-1.0, 1.0, size=(2, 2)) * 2 * jitter
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    ry, rx = rows - cy, cols - cx
    coords = [
        rows + matrix[0, 0] * ry + matrix[0, 1] * rx + displacement * size * fields[0],
        cols + matrix[1, 0] * ry + matrix[1, 1] * rx + displacement * size * fields[1],
    ]
    return np.stack(
        [
            ndimage.map_coordinates(x[..., c], coords, order=1, mode="reflect")
            for c in range(3)
        ],
        -1,
    )


def pixelate(x, s, rng):
    """Downsamples to c times the size (antialiased bilinear) and upsamples
    back by pixel repetition (nearest neighbour): square blocks."""
    h, w = x.shape[:2]
    small = [max(1, int(round(h * PIXELATE[s]))), max(1, int(round(w * PIXELATE[s])))]
    down = tf.image.resize(x, small, method="bilinear", antialias=True)
    return tf.image.resize(down, [h, w], method="nearest").numpy()


def jpeg_compression(x, s, rng):
    """JPEG encoding at the severity's quality (8-bit), then decoding."""
    pixels = tf.constant(np.round(np.clip(x, 0, 1) * 255).astype(np.uint8))
    encoded = tf.io.encode_jpeg(pixels, quality=JPEG_QUALITY[s])
    return tf.io.decode_jpeg(encoded, channels=3).numpy().astype(np.float32) / 255.0


_FUNCTIONS = {name: globals()[name] for name in CORRUPTIONS}


def _splat(canvas, ys, xs, values):
    """Adds `values` at the real-valued points (ys, xs) of `canvas`, each
    spread over its four neighbouring pixels with bilinear weights."""
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    for dy, dx, share in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        np.add.at(canvas, (y0 + dy, x0 + dx), values * share)
