"""Chromium's own GIF decoder as a test oracle: every frame as a browser shows it.

Headless Chromium (driven by Playwright, pointed at an installed ``chromium`` binary: no browser
download) decodes each GIF with WebCodecs ``ImageDecoder({type: 'image/gif'})``, draws every
``VideoFrame`` on an ``OffscreenCanvas`` and reads it back with ``getImageData``. The GIFs are
served from 127.0.0.1 (``ImageDecoder`` exists only in a secure context, which a page from
127.0.0.1 is) and the page posts each decoded animation back as raw RGBA bytes, so large GIFs
never pass through JSON.

One :class:`ChromiumGifDecoder` starts the browser once and decodes any number of files; the
test suite shares one per session. Needs ``pip install playwright`` (the ``test`` extra) and
Chromium (Debian: ``apt-get install chromium``). Nothing in the library imports this module.
"""

from __future__ import annotations

import http.server
import os
import shutil
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

__all__ = ["ChromiumFrames", "ChromiumGifDecoder", "disagreements", "find_chromium"]

# Debian's /usr/bin/chromium is a shell wrapper around this binary; Playwright wants the binary.
_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")

_PAGE = b"""<!doctype html><meta charset="utf-8"><title>gif oracle</title><script>
async function decodeOne(id) {
  const out = {id: id, width: 0, height: 0, durations: [], error: null};
  let decoder = null;
  try {
    const response = await fetch('/gif/' + id);
    decoder = new ImageDecoder({data: await response.arrayBuffer(), type: 'image/gif'});
    await decoder.tracks.ready;
    // A file with a broken tail still shows the frames before it: keep them.
    try { await decoder.completed; } catch (e) { out.error = String(e); }
    const count = decoder.tracks.selectedTrack.frameCount;
    const chunks = [];
    for (let i = 0; i < count; i++) {
      let result;
      try { result = await decoder.decode({frameIndex: i}); }
      catch (e) { out.error = 'frame ' + i + ': ' + e; break; }
      const frame = result.image;
      out.width = frame.displayWidth; out.height = frame.displayHeight;
      const canvas = new OffscreenCanvas(out.width, out.height);
      const ctx = canvas.getContext('2d', {willReadFrequently: true});
      ctx.drawImage(frame, 0, 0);
      chunks.push(ctx.getImageData(0, 0, out.width, out.height).data);
      out.durations.push(frame.duration);
      frame.close();
    }
    await fetch('/frames/' + id, {method: 'POST', body: new Blob(chunks)});
  } catch (e) {
    out.error = String(e);
  } finally {
    if (decoder) decoder.close();
  }
  return out;
}
async function decodeAll(ids) {
  const results = [];
  for (const id of ids) results.push(await decodeOne(id));
  return results;
}
</script>"""


@dataclass(frozen=True)
class ChromiumFrames:
    """One GIF as Chromium decodes it.

    ``rgba`` is (n, h, w, 4) uint8, read from a canvas: alpha is exact and RGB is exact where
    alpha is 255 (a canvas stores premultiplied colour, so fully transparent pixels read as 0).
    ``durations_us`` are the ``VideoFrame`` durations in microseconds. ``error`` is Chromium's
    message when it stopped early (frames before the error are kept), else None.
    """

    path: Path
    rgba: np.ndarray
    durations_us: np.ndarray
    error: str | None = None

    @property
    def n_frames(self) -> int:
        return len(self.rgba)


def find_chromium() -> str | None:
    """The Chromium binary to drive: ``$GIFLAB_CHROMIUM``, else the first one installed."""
    names = [os.environ.get("GIFLAB_CHROMIUM", ""), *_CANDIDATES]
    for name in names:
        exe = shutil.which(name) if name else None
        if exe is not None:
            return exe
    return None


class _Server(http.server.ThreadingHTTPServer):
    """Serves the page and the registered GIFs; receives the decoded frames."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, Path] = {}
        self.results: dict[str, bytes] = {}
        self.lock = threading.Lock()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def _reply(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/":
            self._reply(200, _PAGE, "text/html")
            return
        path = self.server.files.get(self.path.removeprefix("/gif/"))
        if not self.path.startswith("/gif/") or path is None:
            self._reply(404, b"", "text/plain")
            return
        self._reply(200, path.read_bytes(), "image/gif")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            self.server.results[self.path.removeprefix("/frames/")] = body
        self._reply(204, b"", "text/plain")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: one request per file


class ChromiumGifDecoder:
    """Headless Chromium decoding GIFs; use as a context manager, then :meth:`decode`.

    Raises ``ImportError`` without Playwright and ``FileNotFoundError`` without Chromium.
    """

    def __init__(self, executable: str | os.PathLike[str] | None = None) -> None:
        self.executable = str(executable) if executable is not None else find_chromium()
        if self.executable is None:
            raise FileNotFoundError(
                "Chromium is not installed (Debian: apt-get install chromium), or set "
                "GIFLAB_CHROMIUM to its binary"
            )
        self._playwright: Any = None
        self._browser: Any = None
        self._page: Any = None
        self._server: _Server | None = None
        self._count = 0
        # Playwright's sync API runs an event loop on the thread that starts it: a thread of
        # its own keeps that loop away from the caller's (asyncio code, a second decoder).
        self._thread: ThreadPoolExecutor | None = None

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self._thread is not None
        return self._thread.submit(fn, *args).result()

    def __enter__(self) -> ChromiumGifDecoder:
        self._server = _Server()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
        try:
            self._call(self._start)
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        from playwright.sync_api import sync_playwright

        assert self._server is not None
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=self.executable)
        self._page = self._browser.new_page()
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        self._page.goto(f"http://{host}:{port}/")

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._thread is not None:
            self._call(self._stop)
            self._thread.shutdown()
            self._thread = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _stop(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._playwright is not None:
            self._playwright.stop()
            self._playwright = None

    def decode(self, paths: Sequence[str | os.PathLike[str]]) -> list[ChromiumFrames]:
        """Every frame of every file, in one round trip to the page."""
        if self._server is None or self._page is None:
            raise RuntimeError("use ChromiumGifDecoder as a context manager: `with ... as d:`")
        ids = []
        for path in paths:
            self._count += 1
            ids.append(str(self._count))
            self._server.files[ids[-1]] = Path(path)
        decoded = self._call(self._page.evaluate, "ids => decodeAll(ids)", ids)
        frames = []
        for ident, info in zip(ids, decoded, strict=True):
            path = self._server.files.pop(ident)
            with self._server.lock:
                raw = self._server.results.pop(ident, b"")
            shape = (len(info["durations"]), info["height"], info["width"], 4)
            rgba = np.frombuffer(raw, dtype=np.uint8)
            if rgba.size == int(np.prod(shape)):
                rgba = rgba.reshape(shape)
            else:
                message = info["error"] or f"got {rgba.size} bytes for frames of shape {shape}"
                rgba = np.zeros((0, 0, 0, 4), np.uint8)
                info["durations"], info["error"] = [], message
            frames.append(
                ChromiumFrames(
                    path=path,
                    rgba=rgba,
                    durations_us=np.asarray(info["durations"], dtype=np.int64),
                    error=info["error"],
                )
            )
        return frames


def disagreements(frames: ChromiumFrames) -> list[str]:
    """How giflab's decode of ``frames.path`` differs from Chromium's ``frames``: one line per
    difference, empty when they agree.

    Alpha must be equal everywhere and RGB wherever alpha > 0 (a transparent pixel has no
    colour to compare); the declared durations must equal Chromium's ``VideoFrame`` durations.
    """
    from giflab_dask.decode import iter_frames, scan_gif

    name = frames.path.name
    if frames.error is not None:
        return [f"{name}: Chromium stopped: {frames.error}"]
    layout = scan_gif(frames.path)
    expected = (layout.n_frames, layout.height, layout.width)
    if frames.rgba.shape[:3] != expected:
        return [f"{name}: Chromium gives frames {frames.rgba.shape[:3]}, we give {expected}"]
    found = []
    for t, (rgb, alpha) in enumerate(iter_frames(frames.path, layout)):
        theirs = frames.rgba[t]
        wrong_alpha = int(np.count_nonzero(theirs[..., 3] != alpha))
        wrong_rgb = int(np.count_nonzero((theirs[..., :3] != rgb).any(-1) & (alpha > 0)))
        if wrong_alpha or wrong_rgb:
            found.append(
                f"{name} frame {t}: {wrong_alpha} pixels differ in alpha, "
                f"{wrong_rgb} visible pixels in colour"
            )
    ours_ms, chromium_ms = layout.durations_ms, frames.durations_us / 1000
    if not np.array_equal(chromium_ms, ours_ms):
        found.append(f"{name}: durations {ours_ms.tolist()} ms, Chromium {chromium_ms.tolist()} ms")
    return found
