"""The demo's web page: demo.py's handlers laid out with Gradio, and the server around them.

The only module of the package that imports gradio (the demo extra); demo.main imports it after
checking that gradio is there. Layout, top to bottom: the model line; photo upload; click to
select (a click on the gray photo adds the region under it to the mask, or with "remove" takes
it away: demo_select.py); the editor (layers "mask" and, with a hint-capable checkpoint, "hints";
brush, eraser, colour palette); mask tools (family preset + seed, invert, clear); `composite
hard`; Colorize; gray input and output side by side, the mask outlined; the downloads and the
message.

API (gradio_client), each named as below: load_photo(photo) -> (editor, message);
colorize(photo, editor, hard) -> (input view, output view, downloads, message);
preset_mask(photo, editor, spec, seed), invert_mask(editor), clear_mask(editor) -> (editor,
message). `editor` is {"background": file or None, "layers": [mask file, hints file],
"composite": None}; see demo.py for how the layers are read. A click is not in the API (it needs
the page's click coordinates): `gan-colorize --select` and gan_colorize.select_mask do the same.
"""
import json
import socket

import gradio as gr

BRUSH_COLOURS = ["#d62728", "#ff7f0e", "#ffd700", "#2ca02c", "#1f77b4", "#9467bd",
                 "#8c564b", "#e7b48f", "#ffffff"]

# Gradio names layers that come from the server "Layer 1" whatever LayerOptions says (6.x:
# add_layer_from_url). After a handler replaces the layers, this puts the names back, through
# the editor that Gradio's ImageEditor exposes as window.editor. The layers arrive a little
# later than the event's end, so it keeps renaming for two seconds; if Gradio's internals
# change, it does nothing and the layers keep Gradio's names (the page text says the order).
RENAME_LAYERS_JS = """
() => {
  const names = NAMES;
  let ticks = 0;
  const timer = setInterval(() => {
    try {
      const lm = window.editor && window.editor.layer_manager;
      if (lm && lm.layers && lm.layers.length === names.length &&
          lm.layers.some((layer, i) => layer.name !== names[i])) {
        lm.layers.forEach((layer, i) => { layer.name = names[i]; });
        lm.layer_store.update(s => ({...s, layers: lm.layers}));
      }
    } catch (e) { clearInterval(timer); }
    if (++ticks >= 20) clearInterval(timer);
  }, 100);
}
"""

CSS = """
#status-line p { margin: 0; }
"""


def build(demo):
    """demo.Demo -> gr.Blocks, not yet launched."""
    names = list(demo.layer_names)
    hint_text = ("Layer **hints**: the brush colour is the hint colour, placed inside the mask."
                 if demo.takes_hints else
                 "This checkpoint takes no colour hints, so there is no hints layer.")
    with gr.Blocks(title="gan_colorize: paint where and what", analytics_enabled=False,
                   delete_cache=(3600, 3600)) as page:
        gr.Markdown("## gan_colorize: paint where colour goes" +
                    (", and what colour" if demo.takes_hints else ""))
        gr.Markdown(demo.status(), elem_id="status-line")
        with gr.Row():
            with gr.Column(scale=1):
                photo = gr.File(label="Photo (colour or gray; only its lightness is used)",
                                file_types=["image"], type="filepath", elem_id="photo")
                gr.Markdown("**Click to select**: a click on the photo below adds the region "
                            "under it to the mask (it shows tinted); with *remove*, a click "
                            "takes it away. The brush and eraser refine it on the right.")
                mode = gr.Radio(["add", "remove"], value="add", show_label=False,
                                elem_id="click-mode")
                click_view = gr.Image(show_label=False, type="filepath", interactive=False,
                                      buttons=[], elem_id="click-view")
                clicks = gr.State("")
                gr.Markdown("Layer **mask** (the first layer): paint where colour may go; "
                            f"the brush colour does not matter there. {hint_text}")
                with gr.Row():
                    spec = gr.Textbox(label="mask family", value="impa=0", scale=2,
                                      elem_id="preset-spec")
                    seed = gr.Number(label="seed", value=0, precision=0, minimum=0, scale=1)
                with gr.Row():
                    preset_btn = gr.Button("Draw this mask", size="sm", elem_id="preset")
                    invert_btn = gr.Button("Invert mask", size="sm", elem_id="invert")
                    clear_btn = gr.Button("Clear mask", size="sm", elem_id="clear")
                hard = gr.Checkbox(label="composite hard: exactly gray outside the mask "
                                   "(untick for the model's raw output)", value=True, elem_id="hard")
                go = gr.Button("Colorize", variant="primary", elem_id="colorize")
            with gr.Column(scale=2):
                # canvas_size smaller than any photo: Gradio 6.31 centres a layer sent by the
                # server (a click, a preset, invert) in max(canvas, photo), so a 768x512 canvas
                # drew the mask of a smaller photo shifted; the photo is fitted to the view anyway
                editor = gr.ImageEditor(
                    label="paint here", sources=(), type="numpy", image_mode="RGBA",
                    format="png", transforms=(), elem_id="editor", canvas_size=(64, 64),
                    layers=gr.LayerOptions(layers=names, allow_additional_layers=False),
                    brush=gr.Brush(colors=BRUSH_COLOURS, default_color=BRUSH_COLOURS[0],
                                   color_mode="defaults"),
                    eraser=gr.Eraser())
        message = gr.Markdown(elem_id="message")
        # the captions sit above the views, not on them: nothing but the image is drawn there
        with gr.Row():
            gr.Markdown("input, as the network sees it (mask outlined)")
            gr.Markdown("output (mask outlined; the downloaded PNG has no outline)")
        with gr.Row():
            before = gr.Image(show_label=False, type="filepath", interactive=False,
                              buttons=["fullscreen"], elem_id="input-view")
            after = gr.Image(show_label=False, type="filepath", interactive=False,
                             buttons=["fullscreen"], elem_id="output-view")
        downloads = gr.File(label="downloads: result, mask, hints", file_count="multiple",
                            interactive=False, elem_id="downloads")

        rename = RENAME_LAYERS_JS.replace("NAMES", json.dumps(names))
        photo.change(demo.load_photo, photo, [editor, message], api_name="load_photo").then(
            demo.start_selection, photo, [click_view, clicks], api_visibility="private")

        def on_click(path, value, so_far, how, evt: gr.SelectData):
            return demo.click(path, value, so_far, how == "remove", evt.index)
        click_view.select(on_click, [photo, editor, clicks, mode],
                          [editor, click_view, clicks, message],
                          api_visibility="private").then(None, js=rename)
        preset_btn.click(demo.preset_mask, [photo, editor, spec, seed], [editor, message],
                         api_name="preset_mask").then(None, js=rename)
        invert_btn.click(demo.invert_mask, editor, [editor, message],
                         api_name="invert_mask").then(None, js=rename)
        clear_btn.click(demo.clear_mask, editor, [editor, message],
                        api_name="clear_mask").then(None, js=rename)
        go.click(demo.colorize, [photo, editor, hard], [before, after, downloads, message],
                 api_name="colorize")
    # one colorization at a time: torch already uses every core, and the queue answers the rest
    page.queue(default_concurrency_limit=1)
    return page


def free_port(host="127.0.0.1"):
    """A port that is free on `host` now (bound, then released for the server): for tests and
    benchmarks, which must not take 7860 from a demo that is running."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def launch(demo, *, prevent_thread_lock=False, quiet=False, port=None):
    """Build and serve the page on the demo's host and port (or `port`) -> (page, local URL).
    With prevent_thread_lock the server runs in a thread and this returns at once (tests)."""
    s = demo.settings
    page = build(demo)
    _, url, _ = page.launch(
        server_name=s.host, server_port=port or s.port, prevent_thread_lock=prevent_thread_lock,
        quiet=quiet, max_file_size=int(s.max_upload_mb * 1e6), show_error=False, ssr_mode=False,
        css=CSS, footer_links=["api"], theme=gr.themes.Default(
            font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]))
    return page, url


def serve(demo):
    """Serve until Ctrl-C."""
    launch(demo)
