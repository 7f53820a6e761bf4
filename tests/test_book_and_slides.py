"""The HTML book and the slide decks, built by `course.py book` and `course.py slides` from
the committed notebooks, served on localhost and opened in headless Chromium (Debian's
`chromium`, driven by Selenium through Debian's `chromium-driver`).

Checked in the browser: every lesson page renders with all its figures loaded and its
maths typeset by MathJax; the front page is the course map and links to every lesson;
the reference renders `course_lib`'s docstrings; no request leaves localhost (the browser
also cannot resolve any other host); no console errors; a slide deck advances and shows a
slide with typeset maths. Screenshots of the front page, a lesson and a slide are saved in
build/screenshots/.

`course.py test` installs Chromium and its driver on Debian (best effort). Without them
these tests are skipped, except in CI (`CI` set), where they fail.
"""

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
BOOK = BUILD / "book" / "_build" / "html"
SLIDES = BUILD / "slides"
SCREENSHOTS = BUILD / "screenshots"
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SLIDE_TYPES = {"slide", "subslide", "fragment", "-", "skip", "notes"}


def cells(path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell):
    return "".join(cell["source"])


# Slide metadata: no browser needed --------------------------------------------------------


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem[:2] for p in LESSONS])
def test_every_cell_has_a_slide_type(path):
    for index, cell in enumerate(cells(path)):
        kind = cell.get("metadata", {}).get("slideshow", {}).get("slide_type")
        assert kind in SLIDE_TYPES, f"cell {index} ({source(cell)[:40]!r}): slide_type {kind!r}"


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem[:2] for p in LESSONS])
def test_deck_opens_on_the_title_and_skips_the_set_up_cell(path):
    notebook = cells(path)
    first_markdown = next(c for c in notebook if c["cell_type"] == "markdown")
    first_code = next(c for c in notebook if c["cell_type"] == "code")
    assert source(first_markdown).startswith("# "), "the first markdown cell is not the title"
    assert first_markdown["metadata"]["slideshow"]["slide_type"] == "slide"
    assert first_code["metadata"]["slideshow"]["slide_type"] == "skip", "the set-up cell is on a slide"
    for cell in notebook:  # every section starts a slide
        if cell["cell_type"] == "markdown" and source(cell).startswith("## "):
            assert cell["metadata"]["slideshow"]["slide_type"] == "slide", source(cell)[:60]


# Building and serving -------------------------------------------------------------------


def browser_paths():
    chromium = next(filter(None, map(shutil.which, ["chromium", "chromium-browser", "google-chrome"])), None)
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        message = ("headless Chromium and chromedriver are needed (Debian: apt-get install chromium "
                   "chromium-driver; `python3 course.py test` installs them)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return chromium, driver


def build(command):
    started = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "course.py"), command], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def site():
    """Build the book and the slides, serve build/ on 127.0.0.1, yield the base URL."""
    browser_paths()
    seconds = {command: build(command) for command in ("book", "slides")}
    print(f"\nbuilt the book in {seconds['book']:.0f} s, the slides in {seconds['slides']:.0f} s")
    handler = functools.partial(QuietHandler, directory=str(BUILD))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(site):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = browser_paths()
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-first-run", "--disable-background-networking",
                     # no host but this one resolves: a page that reaches out fails and is seen
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(driver, url):
    """Load `url`, wait for MathJax (if the page has it) and for the images; return the URLs
    of every request the page made and its console messages of level SEVERE."""
    driver.get_log("performance")  # drop what earlier pages left
    driver.get_log("browser")
    driver.get(url)
    driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const images = () => Promise.all([...document.images].map(img => img.complete ? null :
            new Promise(resolve => { img.onload = img.onerror = resolve; })));
        const math = window.MathJax && MathJax.startup ? MathJax.startup.promise : Promise.resolve();
        Promise.all([math, images()]).then(() => done(true), () => done(false));
    """)
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    return requests, errors


def assert_local(requests, site):
    assert requests, "no request was recorded"
    outside = [url for url in requests
               if urlparse(url).scheme not in ("data", "blob") and not url.startswith(site + "/")]
    assert not outside, f"requests outside localhost: {outside[:5]}"


def math_nodes(driver):
    return driver.execute_script("return document.querySelectorAll('mjx-container').length")


def broken_images(driver):
    return driver.execute_script(
        "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")


def figures_in(path):
    """The figures a lesson shows: image outputs and images in its markdown."""
    count = 0
    for cell in cells(path):
        if cell["cell_type"] == "markdown":
            count += len(re.findall(r"!\[[^\]]*\]\(|<img\b", source(cell)))
        for output in cell.get("outputs", []):
            count += any(kind.startswith("image/") for kind in output.get("data", {}))
    return count


def has_maths(path):
    return any(cell["cell_type"] == "markdown" and "$" in source(cell) for cell in cells(path))


# The book -------------------------------------------------------------------------------


def test_front_page_is_the_course_map_and_links_every_lesson(site, browser):
    # index.html is Jupyter Book's redirect to the root page of the table of contents
    assert 'url=course_map.html' in (BOOK / "index.html").read_text(encoding="utf-8")
    requests, errors = open_page(browser, f"{site}/book/_build/html/course_map.html")
    assert_local(requests, site)
    assert not errors, errors
    links = browser.execute_script("return [...document.querySelectorAll('article a')].map(a => a.href)")
    for lesson in LESSONS:
        assert any(link.split("#")[0].endswith(f"/{lesson.stem}.html") for link in links), \
            f"the course map does not link to {lesson.stem}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "book_front_page.png"))


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem[:2] for p in LESSONS])
def test_lesson_page_renders_with_figures_and_maths(site, browser, path):
    requests, errors = open_page(browser, f"{site}/book/_build/html/{path.stem}.html")
    assert_local(requests, site)
    assert not errors, errors
    title = browser.execute_script("return document.querySelector('article h1').textContent")
    assert re.search(rf"\b{path.stem[:2]}\b", title), f"page title {title!r}"
    assert not broken_images(browser), f"images that did not load: {broken_images(browser)[:3]}"
    shown = browser.execute_script("return document.querySelectorAll('article img').length")
    assert shown >= figures_in(path), f"{shown} images on the page, the notebook has {figures_in(path)}"
    if has_maths(path):
        assert math_nodes(browser) > 0, "no maths typeset by MathJax"
        assert not browser.execute_script("return document.querySelectorAll('mjx-merror').length"), \
            "MathJax reported a TeX error"
    if path.stem.startswith("05"):
        browser.save_screenshot(str(SCREENSHOTS / "book_lesson_05.png"))


def test_reference_renders_the_docstrings(site, browser):
    requests, errors = open_page(browser, f"{site}/book/_build/html/reference/attention.html")
    assert_local(requests, site)
    assert not errors, errors
    names = browser.execute_script("return [...document.querySelectorAll('dt.sig')].map(d => d.id)")
    assert "course_lib.attention.scaled_dot_product_attention" in names, names[:10]
    modules = [p.stem for p in (ROOT / "course_lib").glob("[a-z]*.py")] + ["exercises"]
    missing = [m for m in modules if not (BOOK / "reference" / f"{m}.html").exists()]
    assert not missing, f"no reference page for {missing}"


# The slides -----------------------------------------------------------------------------


def test_every_lesson_has_a_deck(site):
    decks = sorted(p.name for p in SLIDES.glob("*.slides.html"))
    assert decks == [f"{p.stem}.slides.html" for p in LESSONS]


def reveal(driver, expression):
    """Evaluate `expression` with `Reveal`, the deck's reveal.js API: the template loads
    reveal.js as a RequireJS module (no global), and asking RequireJS for the same path
    returns that instance once it is ready."""
    return driver.execute_async_script(f"""
        const done = arguments[arguments.length - 1];
        require(["_static/reveal.js/dist/reveal.js"], function (Reveal) {{
            const answer = () => Reveal.isReady() ? done({expression}) : setTimeout(answer, 100);
            answer();
        }}, error => done("RequireJS: " + error));""")


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem[:2] for p in LESSONS])
def test_deck_loads_locally_without_errors(site, browser, path):
    requests, errors = open_page(browser, f"{site}/slides/{path.stem}.slides.html")
    assert reveal(browser, "Reveal.getTotalSlides()") >= 5
    assert_local(requests, site)
    assert not errors, errors
    assert not broken_images(browser), f"images that did not load: {broken_images(browser)[:3]}"


def test_slide_deck_advances_and_shows_maths(site, browser):
    from selenium.webdriver.common.keys import Keys

    requests, errors = open_page(browser, f"{site}/slides/05_scaled_dot_product_attention_and_masks.slides.html")
    assert reveal(browser, "Reveal.getTotalSlides()") >= 10
    before = reveal(browser, "Reveal.getIndices()")
    browser.find_element("css selector", "body").send_keys(Keys.ARROW_RIGHT)  # as a lecturer would
    time.sleep(1)
    after = reveal(browser, "Reveal.getIndices()")
    assert after != before, f"the deck did not advance from {before}"
    # Step through the deck (space: the next slide or fragment) to the first slide with maths.
    for _ in range(300):
        if reveal(browser, "Reveal.getCurrentSlide().querySelectorAll('mjx-container').length") or \
                reveal(browser, "Reveal.isLastSlide()"):
            break
        browser.find_element("css selector", "body").send_keys(Keys.SPACE)
    time.sleep(1)  # the transition
    shown = reveal(browser, """[...Reveal.getCurrentSlide().querySelectorAll('mjx-container')]
                               .filter(n => n.getBoundingClientRect().width > 0).length""")
    assert shown > 0, f"no slide with visible typeset maths (stopped at {reveal(browser, 'Reveal.getIndices()')})"
    requests_after, errors_after = requests, errors + [
        e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert_local(requests_after, site)
    assert not errors_after, errors_after
    browser.save_screenshot(str(SCREENSHOTS / "slide_with_maths.png"))
