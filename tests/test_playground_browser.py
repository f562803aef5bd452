"""The playground's page in a real browser: Debian's Chromium, headless,
driven by Selenium through the system's chromedriver (no browser download;
.ci/run installs both). The server runs in this process, so the tests can
compare what the page shows with handprop's own computation."""

import logging
import os
import shutil
import threading
import time

import numpy as np
import pytest

pytest.importorskip("flask")
webdriver = pytest.importorskip("selenium.webdriver")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
           "chromium-driver; .ci/run does)")


@pytest.fixture(scope="module")
def server():
    from werkzeug.serving import make_server

    from handprop.playground import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app()
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.port}/", app
    srv.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch a driver
    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1300,1100",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait(driver, script, timeout=20):
    """Until ``script`` (JavaScript returning a value) is truthy; its value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def open_page(driver, url, query=""):
    driver.get(url + query)
    wait(driver, "window.playground && window.playground.renders >= 1 || "
                 "!document.getElementById('error').hidden")


def test_the_regions_render_and_change_as_it_trains(server, browser):
    url, _ = server
    open_page(browser, url, "?dataset=moons&hidden=8&seed=0")
    before = browser.execute_script("return document.getElementById('regions').toDataURL()")
    # not a blank canvas: the two classes' colours are both there
    colours = browser.execute_script("""
        const c = document.getElementById('regions').getContext('2d');
        const d = c.getImageData(0, 0, 360, 360).data, seen = new Set();
        for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] > d[i + 2] ? 'orange' : 'blue');
        return [...seen].sort();""")
    assert colours == ["blue", "orange"]
    renders = browser.execute_script("return window.playground.renders")
    browser.find_element("id", "run").click()
    wait(browser, f"window.playground.renders >= {renders + 20}")
    browser.find_element("id", "run").click()  # pause
    after = browser.execute_script("return document.getElementById('regions').toDataURL()")
    assert after != before
    assert browser.execute_script("return window.playground.state.epoch") >= 1
    assert "epoch" in browser.find_element("id", "status").text
    units = browser.execute_script("return document.querySelectorAll('#units canvas').length")
    assert units == 8


def test_a_url_restores_its_settings(server, browser):
    url, app = server
    open_page(browser, url, "?dataset=circles&hidden=6,3&lr=0.05&seed=7&activation=tanh&l2=0.001")
    form = browser.execute_script("""
        const f = document.getElementById('controls').elements;
        return [f.dataset.value, f.hidden.value, f.lr.value, f.seed.value, f.activation.value];""")
    assert form == ["circles", "6,3", "0.05", "7", "tanh"]
    settings = browser.execute_script("return window.playground.state.settings")
    assert settings["hidden"] == [6, 3] and settings["dataset"] == "circles"
    assert settings["lr"] == 0.05 and settings["l2"] == [0.001] * 3
    # the same URL, the same run: regions equal to a run made on the server
    from handprop.playground import Run, parse_settings

    run = Run(parse_settings({"dataset": "circles", "hidden": "6,3", "lr": "0.05", "seed": "7",
                              "activation": "tanh", "l2": "0.001"}))
    assert browser.execute_script("return window.playground.state.regions") == \
        run.state()["regions"]
    # changing a control writes it into the URL
    browser.execute_script("""
        const f = document.getElementById('controls');
        f.elements.noise.value = '0.4';
        f.dispatchEvent(new Event('change'));""")
    wait(browser, "window.location.search.includes('noise=0.4')")


def test_show_the_math_agrees_with_loss_and_grads(server, browser):
    url, app = server
    open_page(browser, url, "?dataset=moons&hidden=5,4&activation=tanh&seed=1")
    browser.find_element("id", "step").click()
    wait(browser, "window.playground.state.batch >= 1")
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = browser.find_element("id", "regions")
    ActionChains(browser).move_to_element_with_offset(canvas, 40, -60).click().perform()
    wait(browser, "document.getElementById('math-loss')")
    shown = float(browser.find_element("id", "math-loss").text)
    math = browser.execute_script("return window.playground.math")
    # the point is the one clicked: 40 px right of and 60 px above the centre
    width, height = browser.execute_script(
        "const r = document.getElementById('regions').getBoundingClientRect();"
        "return [r.width, r.height]")
    x0, x1, y0, y1 = browser.execute_script("return window.playground.state.box")
    assert math["x"][0] == pytest.approx((x0 + x1) / 2 + 40 / width * (x1 - x0),
                                         abs=2 * (x1 - x0) / width)
    assert math["x"][1] == pytest.approx((y0 + y1) / 2 + 60 / height * (y1 - y0),
                                         abs=2 * (y1 - y0) / height)
    run_id = browser.execute_script("return window.playground.id")
    net = app.config["RUNS"].get(run_id).net
    loss, grads = net.loss_and_grads(np.array([math["x"]]), np.array([math["label"]]))
    assert shown == pytest.approx(loss, rel=1e-7)  # 8 significant digits on the page
    np.testing.assert_allclose(np.array(math["grads"]["W2"]), grads["W2"], rtol=1e-12,
                               atol=1e-15)
    assert "passed" in browser.find_element("id", "math-body").text
    tables = browser.execute_script("return document.querySelectorAll('#math-body table').length")
    assert tables == 2 + 1 + 6  # two hidden layers, the output, six gradients


@pytest.mark.parametrize("query,message", [
    ("?hidden=1000000000", "at most 4 layers of at most 128 units"),
    ("?l2=-1", "l2 must be a number >= 0"),
    ("?colour=red", 'unknown setting "colour"'),
])
def test_bad_input_gets_a_message_on_the_page(server, browser, query, message):
    url, _ = server
    open_page(browser, url, query)
    wait(browser, "!document.getElementById('error').hidden")
    assert message in browser.find_element("id", "error").text
    # the server goes on serving: fix the setting, and the page trains
    browser.execute_script("""
        const f = document.getElementById('controls');
        f.elements.hidden.value = '8'; f.elements.l2.value = '0';
        f.dispatchEvent(new Event('change'));""")
    wait(browser, "window.playground.id && document.getElementById('error').hidden")


def test_two_tabs_get_runs_of_their_own(server, browser):
    url, app = server
    open_page(browser, url, "?seed=11")
    first = browser.execute_script("return window.playground.id")
    browser.switch_to.new_window("tab")
    try:
        open_page(browser, url, "?seed=12")
        second = browser.execute_script("return window.playground.id")
    finally:
        browser.close()
        browser.switch_to.window(browser.window_handles[0])
    assert first != second
    runs = app.config["RUNS"]
    assert runs.get(first).settings["seed"] == 11 and runs.get(second).settings["seed"] == 12
