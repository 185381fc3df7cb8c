"""Watching the real clip (one shared run), and every kind of bad video input."""

from __future__ import annotations

import json

import numpy as np
import pytest

av = pytest.importorskip("av")


@pytest.fixture(scope="session")
def clip(shared_data):
    return shared_data / "video" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="session")
def lin_gallery(shared_data):
    from facenet_keras.identity.gallery import FaceGallery

    g = FaceGallery(":memory:")
    g.enroll("lin", shared_data / "video" / "lin-manuel-miranda.png")
    return g


@pytest.fixture(scope="session")
def watched(clip, lin_gallery):
    """One watch of the whole clip: per frame (index, time, faces) and every event (images dropped)."""
    from facenet_keras.live.watch import watch

    frames, events = [], []
    for r in watch(clip, lin_gallery):
        frames.append((r.index, r.time, r.faces))
        events.extend(r.events)
    return frames, events


def _tracks(events):
    out = {}
    for e in events:
        t = out.setdefault(e.track, {"identified": []})
        if e.kind == "appeared":
            t["appeared"] = e.time
        elif e.kind == "identified":
            t["identified"].append((e.time, e.identity))
        else:
            t["left"] = e.time
    return out


def test_every_frame_once_in_order(watched):
    frames, _ = watched
    assert [f[0] for f in frames] == list(range(len(frames)))
    assert len(frames) == 275


def test_main_track_identified_quickly_without_switches(watched):
    _, events = watched
    tracks = _tracks(events)
    assert all("appeared" in t and "left" in t for t in tracks.values())
    main_id, main = max(tracks.items(), key=lambda kv: kv[1]["left"] - kv[1]["appeared"])
    assert main["left"] - main["appeared"] > 3.0  # he sings for about 4 s in the second shot
    assert main["identified"], "the main track was never decided"
    first_time, first_who = main["identified"][0]
    assert first_who == "lin"
    assert first_time - main["appeared"] <= 1.0
    assert [who for _, who in main["identified"]] == ["lin"]  # decided once, never switched
    # every frame between its first and last key frame shows the track, labelled once decided
    frames, _ = watched
    shown = [f for f in frames[1:] if main["appeared"] < f[1] < main["left"]]
    assert shown and all(any(face.track == main_id for face in f[2]) for f in shown)
    assert all(
        face.identity == "lin" for f in shown if f[1] > first_time + 0.2 for face in f[2] if face.track == main_id
    )


def test_nobody_else_is_reported_as_him(watched):
    """The pianist's close-up (0.7-1.2 s) and the audience (after 7.1 s) are never called 'lin'."""
    frames, events = watched
    audience = [face for _, t, faces in frames if t > 7.1 for face in faces]
    assert audience and not [f for f in audience if f.identity == "lin"]
    for tid, t in _tracks(events).items():
        named = [who for _, who in t["identified"] if who is not None]
        if 0.6 < t["appeared"] < 2.5 or t["appeared"] > 7.1:
            assert named == [], f"track {tid} (from {t['appeared']:.2f} s) was reported as {named}"
        assert set(named) <= {"lin"}


# ------------------------------------------------------------------------------ bad input
def _error(source) -> str:
    from facenet_keras.live.frames import VideoError, open_video

    with pytest.raises(VideoError) as info, open_video(source) as video:
        for _ in video:
            pass
    return str(info.value)


def test_not_a_video(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("hello\n" * 200)
    assert "not a readable video" in _error(p)


def test_zero_length(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    assert "empty" in _error(p)


def test_no_video_stream(tmp_path):
    p = tmp_path / "sound.m4a"
    with av.open(str(p), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    assert "no video stream" in _error(p)


def test_camera_that_cannot_be_opened():
    assert "cannot open camera" in _error("/dev/video97")


@pytest.fixture(scope="session")
def truncated_clip(clip, tmp_path_factory):
    """The clip remuxed with its index first (so it opens), then cut to 40% of its bytes."""
    path = tmp_path_factory.mktemp("truncated") / "cut.mp4"
    full = path.with_name("full.mp4")
    with av.open(str(clip)) as src, av.open(str(full), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    data = full.read_bytes()
    path.write_bytes(data[: int(0.4 * len(data))])
    return path


def test_truncated_file_closes_partial_outputs(truncated_clip, tmp_path, capsys, shared_data):
    from facenet_keras.cli import main

    gallery = tmp_path / "g.sqlite"
    assert (
        main(["--gallery", str(gallery), "enroll", "lin", str(shared_data / "video" / "lin-manuel-miranda.png")]) == 0
    )
    out, events = tmp_path / "out.mp4", tmp_path / "events.jsonl"
    code = main(
        ["watch", str(truncated_clip), "--gallery", str(gallery), "--annotate", str(out), "--json", str(events)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "stopped after" in err and err.count("error:") == 1
    with av.open(str(out)) as video:  # a valid, shorter video
        n = sum(1 for _ in video.decode(video=0))
    assert 0 < n < 275
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert lines and {e["event"] for e in lines} >= {"appeared", "left"}
    appeared = {e["track"] for e in lines if e["event"] == "appeared"}
    left = {e["track"] for e in lines if e["event"] == "left"}
    assert appeared == left  # every track closed before the error was reported
    assert oct(out.stat().st_mode & 0o777) == "0o600" and oct(events.stat().st_mode & 0o777) == "0o600"


def test_cli_watch_json_lines_and_summary(clip, tmp_path, capsys, shared_data):
    from facenet_keras.cli import main

    gallery = tmp_path / "g.sqlite"
    main(["--gallery", str(gallery), "enroll", "lin", str(shared_data / "video" / "lin-manuel-miranda.png")])
    capsys.readouterr()
    assert main(["watch", "--json", str(clip), "--gallery", str(gallery), "--max-seconds", "0.6"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    summary = lines[-1]["summary"]
    assert next(p["who"] for p in summary) == "lin"
    assert any(e.get("event") == "identified" and e.get("identity") == "lin" for e in lines[:-1])
