"""Latency of the demo through its HTTP API: one colorization of a WxH photo (default 1024x768)
as a user's browser or gradio_client asks for it, end to end.

The demo (gan_colorize/demo_page.py) is served on 127.0.0.1 in this process; each timed call is
gradio_client's predict on /colorize: upload of the photo and the painted mask layer, the queue,
reading the photo, the colorization, the views and the downloads written, the answer, and the
client fetching those files. The server's own time for the handler (the page's "done in") is
reported beside it. Needs the demo extra (pip install -e '.[demo]'). Issue 12's target: under
1 s for 1024x768 with the shipped checkpoint, on the 2-core CPU; run it on a quiet machine.

    python bench/demo_latency.py                                   # shipped checkpoint
    python bench/demo_latency.py --checkpoint C --size 1024x768 --calls 10 --json lat.json
"""
import argparse
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench import common  # noqa: E402


def size_arg(text):
    """'1024x768' -> (width, height)."""
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not m or min(int(m[1]), int(m[2])) < 8:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 1024x768, got {text!r}")
    return int(m[1]), int(m[2])


def make_inputs(folder, width, height, takes_hints):
    """A photo (scikit-image's coffee, resized), a mask layer (the left half, painted: opaque
    on a clear layer) and, for a hint-capable checkpoint, a hints layer with three hints."""
    from PIL import Image
    from skimage import data
    photo = folder / "photo.png"
    Image.fromarray(data.coffee()).resize((width, height), Image.Resampling.BICUBIC).save(photo)
    mask = np.zeros((height, width, 4), np.uint8)
    mask[:, : width // 2] = 255
    layers = [folder / "mask.png"]
    Image.fromarray(mask).save(layers[0])
    if takes_hints:
        hints = np.zeros((height, width, 4), np.uint8)
        for k, colour in enumerate([(200, 40, 40), (40, 160, 60), (40, 80, 200)]):
            y, x = height * (k + 1) // 4, width // 8
            hints[y:y + 5, x:x + 5] = (*colour, 255)
        layers.append(folder / "hints.png")
        Image.fromarray(hints).save(layers[1])
    return photo, layers


def measure(checkpoint="", size=(1024, 768), calls=10, warmup=2, hard=True, device="cpu",
            timeout=300):
    """-> one result row: end-to-end seconds per call, and the server's own handler seconds."""
    from gradio_client import Client, handle_file

    from gan_colorize.core.config import DemoConfig
    from gan_colorize.apps.demo import Demo
    from gan_colorize.apps.demo_page import free_port, launch
    demo = Demo.from_settings(DemoConfig(checkpoint=checkpoint, device=device))
    if demo.colorizer is None:
        demo.close()
        raise SystemExit(f"error: {demo.load_error}")
    page = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            photo, layers = make_inputs(tmp, *size, demo.takes_hints)
            page, url = launch(demo, prevent_thread_lock=True, quiet=True, port=free_port())
            client = Client(url, verbose=False, download_files=str(tmp / "downloads"),
                            analytics_enabled=False)
            server_s = []

            def call():
                editor = {"background": None, "layers": [handle_file(str(f)) for f in layers],
                          "composite": None}
                job = client.submit(handle_file(str(photo)), editor, hard, api_name="/colorize")
                *_, message = job.result(timeout=timeout)
                done = re.match(r"done in ([\d.]+) s", message)
                if not done:
                    raise SystemExit(f"error: the demo answered: {message}")
                server_s.append(float(done[1]))

            # the client's clock: the server's work is done when its answer arrives
            client_side = common.resolve_device("cpu")
            common.time_calls(call, warmup, client_side)
            server_s.clear()
            s = common.summarize(common.time_calls(call, calls, client_side))
    finally:
        if page is not None:
            page.close()
        demo.close()
    return {"size": f"{size[0]}x{size[1]}", "checkpoint": checkpoint or "default",
            "hints": demo.takes_hints, "hard": hard, "calls": calls, "http_s_median": s["median_s"],
            "http_s_best": s["best_s"], "http_s_all": s["all_s"],
            "server_s_median": float(np.median(server_s)), "target_s": 1.0,
            "met": s["median_s"] < 1.0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="", help="default: the shipped checkpoint")
    p.add_argument("--size", type=size_arg, default=(1024, 768), help="photo WIDTHxHEIGHT")
    p.add_argument("--calls", type=int, default=10, help="timed calls")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    p.add_argument("--no-hard", dest="hard", action="store_false", help="composite none")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    p.add_argument("--json", default="", help="write the results here too")
    args = p.parse_args(argv)
    common.set_threads(args.threads)
    row = measure(args.checkpoint, args.size, args.calls, args.warmup, args.hard, args.device)
    info = common.machine_info()
    common.print_table(
        "demo latency through the HTTP API (gradio_client -> /colorize)", info,
        [("size", "photo", None), ("checkpoint", "checkpoint", None), ("hints", "hints", None),
         ("calls", "calls", "d"), ("http_s_median", "HTTP s (median)", ".3f"),
         ("http_s_best", "HTTP s (best)", ".3f"), ("server_s_median", "handler s (median)", ".3f"),
         ("met", "< 1 s", None)], [row])
    common.write_json(args.json, "demo_latency", info, args, [row])
    return row


if __name__ == "__main__":
    main()
