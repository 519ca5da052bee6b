"""Drive the demo page in a real browser: headless Chromium through Selenium and the system's
chromedriver (Debian: apt-get install chromium chromium-driver; nothing is downloaded).

tests/apps/test_demo_server.py calls `colorize_in_browser` (a brush stroke) and
`select_in_browser` (clicks to select); run as a script, the same code paths serve the demo and
write the README's screenshot:

    python tests/apps/demo_browser.py --out docs/demo.png                  # the shipped checkpoint
    python tests/apps/demo_browser.py --checkpoint C --raw --out docs/demo.png
    python tests/apps/demo_browser.py --select 230,170 --out docs/demo.png   # click to select
"""
import argparse
import io
import os
import shutil
import sys
import time
import urllib.request

import numpy as np

WINDOW = (1400, 1200)       # CSS px; headless Chromium's device pixel ratio is 1
STROKE = [(-70, -25), (45, 0), (45, 5), (40, 10)]   # start (from the canvas centre), then moves


def browser_missing():
    """None when Selenium, Chromium and chromedriver are all there, else why not (a skip reason)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    if not chromium_binary():
        return "no Chromium binary (apt-get install chromium)"
    if not shutil.which("chromedriver"):
        return "no chromedriver (apt-get install chromium-driver)"
    return None


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def open_browser(timeout=60):
    """A headless Chromium of WINDOW size; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    os.environ.setdefault("SE_OFFLINE", "true")   # Selenium Manager must not try to download
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_binary()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--disable-lcd-text", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(timeout)
    driver.set_script_timeout(timeout)
    return driver


def _wait(driver, what, timeout, poll=0.2):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=poll).until(lambda d: what(d))


def _upload(driver, url, photo, timeout):
    """Load the page and upload `photo` -> the message element."""
    from selenium.webdriver.common.by import By
    driver.get(url)
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"), timeout)
    driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(os.fspath(photo))
    message = driver.find_element(By.ID, "message")
    _wait(driver, lambda d: "Now paint" in message.text or "error" in message.text, timeout)
    if "error" in message.text:
        raise AssertionError(f"the page refused the photo: {message.text}")
    return message


def colorize_in_browser(driver, url, photo, hard=True, timeout=60):
    """Load the page, upload `photo`, paint STROKE on the mask layer, tick `composite hard` if
    asked, press Colorize and wait for the answer. -> dict: message (text), output (uint8
    (h,w,3): what the output image element shows, cut from a screenshot), mask (bool (h,w): the
    downloaded mask, at the same size)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    message = _upload(driver, url, photo, timeout)
    canvas = driver.find_elements(By.CSS_SELECTOR, "#editor canvas")[-1]
    time.sleep(0.5)   # the editor fits the photo to the canvas with a short animation
    (x0, y0), moves = STROKE[0], STROKE[1:]
    chain = ActionChains(driver).move_to_element_with_offset(canvas, x0, y0).click_and_hold()
    for dx, dy in moves:
        chain = chain.move_by_offset(dx, dy)
    chain.release().perform()
    return _colorize(driver, message, hard, timeout)


def select_in_browser(driver, url, photo, clicks, hard=True, timeout=60):
    """Load the page, upload `photo`, click the click view at each of `clicks` ((x, y) pixels of
    the view image; add mode), then Colorize as colorize_in_browser. -> its dict, plus `clicks`
    (the --select text the page gave) and `downloads` ({name: uint8 array} of the PNGs)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    message = _upload(driver, url, photo, timeout)
    said = []
    for x, y in clicks:
        img = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#click-view img"),
                    timeout)[0]
        _wait(driver, lambda d: d.execute_script("return arguments[0].complete && "
                                                 "arguments[0].naturalWidth > 0", img), timeout)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
        left, top, width, height = _content_box(driver, img)
        rect = driver.execute_script("const r = arguments[0].getBoundingClientRect(); "
                                     "return [r.left, r.top, r.width, r.height]", img)
        scale = width / driver.execute_script("return arguments[0].naturalWidth", img)
        # Selenium's offsets are from the element's centre, in CSS pixels
        dx = left + (x + 0.5) * scale - (rect[0] + rect[2] / 2)
        dy = top + (y + 0.5) * scale - (rect[1] + rect[3] / 2)
        # the answer is in when the view is a new file and the message names another click (while
        # the request runs, the old message shows with a timer added to it)
        before, src = message.text.split("(pixels")[0], img.get_attribute("src")
        chain = ActionChains(driver).move_to_element_with_offset(img, round(dx), round(dy))
        chain.click().perform()
        _wait(driver, lambda d: "error" in message.text or (
            "added the region" in message.text and message.text.split("(pixels")[0] != before
            and d.execute_script("const i = document.querySelector('#click-view img'); "
                                 "return i !== null && i.src !== arguments[0]", src)), timeout)
        if "error" in message.text:
            raise AssertionError(f"the click was refused: {message.text}")
        said.append(message.text)
    time.sleep(1.0)   # the editor loads the new mask layer from its URL
    result = _colorize(driver, message, hard, timeout)
    match = [t.split("--select '", 1)[1].split("'", 1)[0] for t in said if "--select '" in t]
    result["clicks"] = match[-1] if match else None
    result["said"] = said
    return result


def _colorize(driver, message, hard, timeout):
    """Set `composite hard` (ticked by default) as asked, press Colorize, read what the page
    shows and downloads."""
    from selenium.webdriver.common.by import By
    box = driver.find_element(By.CSS_SELECTOR, "#hard input")
    if box.is_selected() != bool(hard):
        box.click()
    driver.find_element(By.ID, "colorize").click()
    _wait(driver, lambda d: "done in" in message.text or "error" in message.text, timeout)
    if "error" in message.text:
        raise AssertionError(f"the page answered with an error: {message.text}")
    img = _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#output-view img"), timeout)[0]
    _wait(driver, lambda d: d.execute_script("return arguments[0].complete && "
                                             "arguments[0].naturalWidth > 0", img), timeout)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)
    time.sleep(0.3)
    output = _shown_image(driver, img)
    links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "#downloads a")]
    mask_url = next(u for u in links if u and u.split("?")[0].endswith("_mask.png"))
    mask = _read_png(mask_url, timeout)
    color_url = next(u for u in links if u and u.split("?")[0].endswith("_color.png"))
    from gan_colorize.data.mask_families import resize_nearest
    return {"message": message.text, "output": output,
            "mask": resize_nearest(mask[..., 0] > 127, *output.shape[:2]),
            "downloads": {"mask": mask[..., 0] > 127, "color": _read_png(color_url, timeout)}}


def _content_box(driver, img):
    """[left, top, width, height] in CSS pixels of what an <img> shows: the element box less the
    letterbox of object-fit: contain / scale-down."""
    return driver.execute_script("""
        const im = arguments[0], r = im.getBoundingClientRect();
        const fit = getComputedStyle(im).objectFit;
        let s = 1;
        if (fit === 'contain' || fit === 'scale-down')
            s = Math.min(r.width / im.naturalWidth, r.height / im.naturalHeight);
        if (fit === 'scale-down') s = Math.min(s, 1);
        if (fit === 'fill' || fit === '' ) return [r.left, r.top, r.width, r.height];
        const w = im.naturalWidth * s, h = im.naturalHeight * s;
        return [r.left + (r.width - w) / 2, r.top + (r.height - h) / 2, w, h];""", img)


def _shown_image(driver, img):
    """The pixels an <img> shows on screen: the screenshot cut to its content box."""
    from PIL import Image
    box = _content_box(driver, img)
    shot = np.asarray(Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB"))
    left, top, width, height = (int(round(v)) for v in box)
    return shot[top:top + height, left:left + width]


def _read_png(url, timeout):
    from PIL import Image
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"))


def chroma(rgb):
    """uint8 (h,w,3) -> (h,w) max - min over the channels: 0 for gray, large for vivid colour."""
    c = rgb.astype(np.int16)
    return c.max(2) - c.min(2)


def main(argv=None):
    """Serve the demo, paint (or click) in the browser, and save a screenshot of the page."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="", help="default: the shipped checkpoint")
    p.add_argument("--photo", default="", help="default: scikit-image's chelsea")
    p.add_argument("--out", default="docs/demo.png")
    p.add_argument("--device", default="cpu")
    p.add_argument("--raw", action="store_true", help="untick composite hard (the model's raw "
                   "output) before Colorize")
    p.add_argument("--select", default="", help="x,y;x,y: click to select at these pixels of "
                   "the click view instead of painting a stroke")
    args = p.parse_args(argv)
    reason = browser_missing()
    if reason:
        sys.exit(f"error: {reason}")
    from gan_colorize.core.config import DemoConfig
    from gan_colorize.apps.demo import Demo
    from gan_colorize.apps.demo_page import free_port, launch
    photo = args.photo
    demo = Demo.from_settings(DemoConfig(checkpoint=args.checkpoint, device=args.device))
    if demo.colorizer is None:
        sys.exit(f"error: {demo.load_error}")
    if not photo:
        from PIL import Image
        from skimage import data
        photo = str(demo.workdir / "chelsea.png")
        Image.fromarray(data.chelsea()).save(photo)
    page, url = launch(demo, prevent_thread_lock=True, quiet=True, port=free_port())
    driver = open_browser()
    try:
        if args.select:
            clicks = [tuple(int(v) for v in p.split(",")) for p in args.select.split(";")]
            select_in_browser(driver, url, photo, clicks, hard=not args.raw)
        else:
            colorize_in_browser(driver, url, photo, hard=not args.raw)
        driver.execute_script("window.scrollTo(0, 0)")
        height = driver.execute_script(   # Gradio's app may scroll inside the body
            "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight,"
            " ...[...document.querySelectorAll('gradio-app, .gradio-container')]"
            ".map(e => e.scrollHeight))")
        driver.set_window_size(WINDOW[0], min(int(height) + 40, 2400))
        time.sleep(0.5)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        driver.save_screenshot(args.out)
        print(f"wrote {args.out}")
    finally:
        driver.quit()
        page.close()
        demo.close()


if __name__ == "__main__":
    main()
