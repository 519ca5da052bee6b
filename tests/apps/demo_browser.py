"""Drive the demo page in a real browser: headless Chromium through Selenium and the system's
chromedriver (Debian: apt-get install chromium chromium-driver; nothing is downloaded).

tests/apps/test_demo_server.py calls `colorize_in_browser`; run as a script, the same code path
serves the demo and writes the README's screenshot:

    python tests/apps/demo_browser.py --out docs/demo.png                  # the shipped checkpoint
    python tests/apps/demo_browser.py --checkpoint C --hard --out docs/demo.png
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


def colorize_in_browser(driver, url, photo, hard=True, timeout=60):
    """Load the page, upload `photo`, paint STROKE on the mask layer, tick `composite hard` if
    asked, press Colorize and wait for the answer. -> dict: message (text), output (uint8
    (h,w,3): what the output image element shows, cut from a screenshot), mask (bool (h,w): the
    downloaded mask, at the same size)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    driver.get(url)
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#photo input[type=file]"), timeout)
    driver.find_element(By.CSS_SELECTOR, "#photo input[type=file]").send_keys(os.fspath(photo))
    message = driver.find_element(By.ID, "message")
    _wait(driver, lambda d: "Now paint" in message.text or "error" in message.text, timeout)
    if "error" in message.text:
        raise AssertionError(f"the page refused the photo: {message.text}")
    canvas = driver.find_elements(By.CSS_SELECTOR, "#editor canvas")[-1]
    time.sleep(0.5)   # the editor fits the photo to the canvas with a short animation
    (x0, y0), moves = STROKE[0], STROKE[1:]
    chain = ActionChains(driver).move_to_element_with_offset(canvas, x0, y0).click_and_hold()
    for dx, dy in moves:
        chain = chain.move_by_offset(dx, dy)
    chain.release().perform()
    if hard:
        driver.find_element(By.CSS_SELECTOR, "#hard input").click()
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
    from gan_colorize.data.mask_families import resize_nearest
    return {"message": message.text, "output": output,
            "mask": resize_nearest(mask[..., 0] > 127, *output.shape[:2])}


def _shown_image(driver, img):
    """The pixels an <img> shows on screen: the screenshot cut to its content box (the element
    box less the letterbox of object-fit: contain / scale-down)."""
    from PIL import Image
    box = driver.execute_script("""
        const im = arguments[0], r = im.getBoundingClientRect();
        const fit = getComputedStyle(im).objectFit;
        let s = 1;
        if (fit === 'contain' || fit === 'scale-down')
            s = Math.min(r.width / im.naturalWidth, r.height / im.naturalHeight);
        if (fit === 'scale-down') s = Math.min(s, 1);
        if (fit === 'fill' || fit === '' ) return [r.left, r.top, r.width, r.height];
        const w = im.naturalWidth * s, h = im.naturalHeight * s;
        return [r.left + (r.width - w) / 2, r.top + (r.height - h) / 2, w, h];""", img)
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
    """Serve the demo, paint in the browser, and save a screenshot of the whole page."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default="", help="default: the shipped checkpoint")
    p.add_argument("--photo", default="", help="default: scikit-image's chelsea")
    p.add_argument("--out", default="docs/demo.png")
    p.add_argument("--device", default="cpu")
    p.add_argument("--hard", action="store_true", help="tick composite hard before Colorize")
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
        colorize_in_browser(driver, url, photo, hard=args.hard)
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
