"""Seeded presentation-attack clips for the liveness tests and benchmarks/liveness_errors.py.

- :func:`photo_attack`: a still photo held up to the camera: a flat (or bent) print moved by a
  smooth hand-held motion (tilt, turn, roll, sway, distance) in perspective, in front of a
  background; then blurred and JPEG re-encoded frame by frame, as a cheap webcam would.
- :func:`replay_attack`: the frames of a real clip shown on a flat "screen" (a phone with a black
  bezel) held the same way.

Pure numpy + PIL; each clip is determined by its seed. Nothing here is written to disk.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

SIZE = (640, 360)  # output frames, width x height
FPS = 30.0


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def _project(rot, centre, width_m, height_m, tw, th, bend, focal, u, v):
    """Texture coordinates (tx, ty) seen by the camera rays through pixels (u, v) (centred), NaN where
    a ray misses the print."""
    d = np.stack([u / focal, v / focal, np.ones_like(u)], axis=-1)
    d_loc = d @ rot  # rot maps the print's frame to the camera's
    o_loc = -centre @ rot
    a = bend * d_loc[..., 0] ** 2
    b = 2 * bend * o_loc[0] * d_loc[..., 0] - d_loc[..., 2]
    c = bend * o_loc[0] ** 2 - o_loc[2]
    with np.errstate(invalid="ignore", divide="ignore"):
        if abs(bend) < 1e-9:
            lam = -c / b
        else:
            disc = np.sqrt(b * b - 4 * a * c)
            r1, r2 = (-b - disc) / (2 * a), (-b + disc) / (2 * a)
            lam = np.where((r1 > 0) & ((r1 < r2) | (r2 <= 0)), r1, r2)
    lam = np.where(lam > 0, lam, np.nan)
    tx = ((o_loc[0] + lam * d_loc[..., 0]) / width_m + 0.5) * tw
    ty = ((o_loc[1] + lam * d_loc[..., 1]) / height_m + 0.5) * th
    return tx, ty


def render_surface(
    texture: np.ndarray,
    background: np.ndarray,
    *,
    width_m: float,
    rot: np.ndarray,
    centre: np.ndarray,
    bend: float = 0.0,
    focal: float = 600.0,
    cell: int = 8,
) -> np.ndarray:
    """A (possibly bent) rectangular print of ``texture`` seen by a pinhole camera, over ``background``.

    The print is width_m wide (height by the texture's aspect), centred at ``centre`` (metres, camera
    frame: x right, y down, z forward), oriented by ``rot``; ``bend`` curves it about its vertical
    axis (z_local = bend * x_local**2, 1/m). The exact ray-surface intersection is computed on a grid
    of ``cell``-pixel cells and PIL's mesh transform fills each cell (a projective map per cell).
    """
    w, h = SIZE
    th, tw = texture.shape[:2]
    gx, gy = np.meshgrid(np.arange(0, w + 1, cell, dtype=np.float64), np.arange(0, h + 1, cell, dtype=np.float64))
    tx, ty = _project(rot, centre, width_m, width_m * th / tw, tw, th, bend, focal, gx - w / 2, gy - h / 2)
    mesh = []
    for r in range(gx.shape[0] - 1):
        for c in range(gx.shape[1] - 1):
            xs = (tx[r, c], tx[r + 1, c], tx[r + 1, c + 1], tx[r, c + 1])
            ys = (ty[r, c], ty[r + 1, c], ty[r + 1, c + 1], ty[r, c + 1])
            if not np.all(np.isfinite(xs + ys)):
                continue
            if max(xs) < 0 or min(xs) > tw or max(ys) < 0 or min(ys) > th:
                continue
            box = (int(gx[r, c]), int(gy[r, c]), int(gx[r, c + 1]), int(gy[r + 1, c]))
            mesh.append((box, (xs[0], ys[0], xs[1], ys[1], xs[2], ys[2], xs[3], ys[3])))
    rgba = Image.fromarray(np.dstack([texture, np.full((th, tw), 255, np.uint8)]), "RGBA")
    warped = rgba.transform((w, h), Image.MESH, mesh, Image.BILINEAR) if mesh else Image.new("RGBA", (w, h))
    out = Image.fromarray(background).convert("RGBA")
    out.alpha_composite(warped)
    return np.asarray(out.convert("RGB"))


def _background(rng: np.random.Generator) -> np.ndarray:
    """A blurred random room-like backdrop (smooth colour gradients)."""
    w, h = SIZE
    small = rng.uniform(40, 200, size=(4, 6, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


def _degrade(frame: np.ndarray, rng: np.random.Generator, blur: float, quality: int) -> np.ndarray:
    im = Image.fromarray(frame)
    if blur > 0:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    noisy = np.asarray(im).astype(np.float32) + rng.normal(0, 2.0, size=frame.shape)
    buf = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _hand_motion(rng: np.random.Generator, n: int):
    """Smooth hand-held motion: per frame (yaw, pitch, roll) radians and centre offsets (m)."""
    t = np.arange(n) / FPS
    out = []
    amps = [rng.uniform(0.15, 0.45), rng.uniform(0.1, 0.35), rng.uniform(0.03, 0.12)]  # up to ~25 degrees
    freqs = rng.uniform(0.3, 1.0, size=6)
    phases = rng.uniform(0, 2 * np.pi, size=6)
    shift = rng.uniform(0.01, 0.04, size=3)
    for k in range(3):
        out.append(amps[k] * np.sin(2 * np.pi * freqs[k] * t + phases[k]))
    offs = [shift[k] * np.sin(2 * np.pi * freqs[3 + k] * t + phases[3 + k]) for k in range(3)]
    return np.stack(out, 1), np.stack(offs, 1)


def photo_attack(photo: np.ndarray, seed: int, seconds: float = 2.0, *, bend: float | None = None):
    """A hand-held print of ``photo`` (H, W, 3) uint8: frames (T, 360, 640, 3) uint8 and times (T,).
    ``bend``: curvature (1/m); by default one seed in two bends the print (0.5-2.5 1/m)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * FPS)
    if bend is None:
        bend = float(rng.uniform(0.5, 2.5)) * float(rng.choice([-1, 1])) if rng.random() < 0.5 else 0.0
    angles, offs = _hand_motion(rng, n)
    width = rng.uniform(0.12, 0.2)  # a 12-20 cm print
    distance = rng.uniform(0.35, 0.5)
    blur, quality = rng.uniform(0.0, 1.5), int(rng.integers(35, 90))
    bg = _background(rng)
    frames = []
    for i in range(n):
        rot = _rotation(*angles[i])
        centre = np.array([offs[i, 0], offs[i, 1], distance + offs[i, 2]])
        frame = render_surface(photo, bg, width_m=width, rot=rot, centre=centre, bend=bend)
        frames.append(_degrade(frame, rng, blur, quality))
    return np.stack(frames), np.arange(n) / FPS


def replay_attack(clip: np.ndarray, seed: int):
    """The frames of ``clip`` (T, H, W, 3) shown on a hand-held phone screen (flat, black bezel)."""
    rng = np.random.default_rng(seed)
    n = len(clip)
    angles, offs = _hand_motion(rng, n)
    angles *= 0.4  # a phone is held steadier than a print is waved, and close to the camera
    offs *= 0.25
    width = rng.uniform(0.14, 0.17)  # a phone held close: its screen fills most of the frame
    distance = rng.uniform(0.15, 0.18)
    blur, quality = rng.uniform(0.0, 1.0), int(rng.integers(50, 90))
    gamma = rng.uniform(0.8, 1.2)
    bg = _background(rng)
    frames = []
    for i in range(n):
        screen = clip[i].astype(np.float32) / 255.0
        screen = (255 * screen**gamma).astype(np.uint8)
        pad = max(2, screen.shape[1] // 30)
        screen = np.pad(screen, ((pad, pad), (pad, pad), (0, 0)))  # the black bezel
        rot = _rotation(*angles[i])
        centre = np.array([offs[i, 0], offs[i, 1], distance + offs[i, 2]])
        frames.append(_degrade(render_surface(screen, bg, width_m=width, rot=rot, centre=centre), rng, blur, quality))
    return np.stack(frames), np.arange(n) / FPS


def attack_photos(shared_data, n: int | None = None) -> list:
    """Paths of single-face photos in shared/data/faces, in a fixed order (one per person)."""
    people = sorted(p for p in (shared_data / "faces").iterdir() if p.is_dir())
    paths = []
    for person in people:
        photos = sorted(person.glob("*.jpg")) + sorted(person.glob("*.png"))
        if photos:
            paths.append(photos[0])
    return paths if n is None else paths[:n]


def load_photo(path, detector=None, margin: float = 1.6) -> np.ndarray:
    """The photo cropped around its largest face (a square ``margin`` x the face box on each side of
    its centre), as a portrait print would show it; at most 400 px."""
    from facenet_keras.faces.detection import FaceDetector

    im = Image.open(path).convert("RGB")
    im.thumbnail((1000, 1000))
    dets = (detector or FaceDetector()).detect(np.asarray(im))
    if dets:
        x, y, bw, bh = max(dets, key=lambda d: d.area).box
        cx, cy, half = x + bw / 2, y + bh / 2, margin * max(bw, bh)
        im = im.crop((int(cx - half), int(cy - half * 0.9), int(cx + half), int(cy + half * 1.1)))
    im.thumbnail((400, 400))
    return np.asarray(im)
