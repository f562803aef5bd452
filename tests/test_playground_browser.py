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
    units = browser.execute_script(
        "return document.querySelectorAll('#network .unit[data-layer=\"1\"]').length")
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
    assert tables == 2 + 1 + 1  # two hidden layers, the output, the gradients' check


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


# -- the network drawn, backprop on it, live changes, speed, every screen ----------------


def api_run(app, browser):
    return app.config["RUNS"].get(browser.execute_script("return window.playground.id"))


def test_the_network_is_drawn_with_every_weight_shown_and_its_value_on_hover(server, browser):
    url, app = server
    open_page(browser, url, "?hidden=20,6&features=x1,x2,x1x2&seed=3")
    browser.find_element("id", "step").click()
    wait(browser, "window.playground.state.batch >= 1")
    net = browser.execute_script("return window.playground.state.network")
    shown = [layer["shown"] for layer in net["layers"]]
    assert shown == [3, 16, 6, 2]  # the first 16 of 20 units
    assert "+4 more units" in browser.find_element("id", "network").text
    edges = browser.execute_script("return document.querySelectorAll('#network .edge').length")
    assert edges == sum(a * b for a, b in zip(shown, shown[1:]))
    biases = browser.execute_script("return document.querySelectorAll('#network .bias').length")
    assert biases == 16 + 6 + 2
    params = api_run(app, browser).net.params
    from selenium.webdriver.common.action_chains import ActionChains

    edge = browser.find_element("css selector", '#network .edge[data-name="W2"][data-i="4"]'
                                                '[data-j="7"]')
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('mousemove', "
                           "{bubbles: true, clientX: 10, clientY: 10}))", edge)
    tip = browser.find_element("id", "tooltip").text
    assert tip.startswith("W2[4, 7] = ")
    assert float(tip.split("= ")[1]) == pytest.approx(params["W2"][4, 7], rel=1e-5)
    assert float(edge.get_attribute("data-value")) == params["W2"][4, 7]  # the API's value
    # the hovered value follows the run
    browser.find_element("id", "step").click()
    wait(browser, "window.playground.state.batch >= 2")
    tip = wait(browser, "document.getElementById('tooltip').textContent")
    assert float(tip.split("= ")[1]) == pytest.approx(params["W2"][4, 7], rel=1e-5)
    ActionChains(browser).move_by_offset(1, 1).perform()


def show_point(browser, index):
    browser.execute_script(f"""
        const pg = window.playground;
        pg.mathPoint = pg.points.train.X[{index}]; pg.mathLabel = null; pg.math = null;""")
    browser.find_element("id", "step").click()
    return wait(browser, "window.playground.math")


def test_the_deltas_on_the_drawing_are_loss_and_grads(server, browser):
    url, app = server
    open_page(browser, url, "?hidden=5,4&activation=tanh&seed=1")
    math = show_point(browser, 3)
    browser.execute_script("document.querySelector('#stages [data-stage=backward]').click()")
    drawn = browser.execute_script("""
        const out = {};
        document.querySelectorAll('#network .unit').forEach((u) => {
          const t = u.querySelector('.value');
          if (t.dataset.what !== 'δ') return;
          (out[u.dataset.layer] ||= [])[u.dataset.unit] = Number(t.dataset.value);
        });
        return out;""")
    run = api_run(app, browser)
    x = np.array([math["x"]])
    _, grads = run.net.loss_and_grads(run.inputs(x), np.array([math["label"]]))
    assert set(drawn) == {"1", "2", "3"}  # two hidden layers and the output
    for layer, values in drawn.items():  # for one point, delta_l is the gradient of b_l
        np.testing.assert_allclose(values, grads[f"b{layer}"], rtol=1e-9, atol=1e-15)
    # the label is the point's own
    assert math["label"] == int(run.y[3])
    assert "δ" in browser.find_element("id", "stage-note").text


def test_a_label_change_recomputes(server, browser):
    url, app = server
    open_page(browser, url, "?dataset=spiral&classes=3&hidden=8&seed=2")
    first = show_point(browser, 0)
    run = api_run(app, browser)
    other = (first["label"] + 1) % 3
    browser.execute_script(f"""
        const s = document.getElementById('math-label');
        s.value = '{other}'; s.dispatchEvent(new Event('change'));""")
    wait(browser, f"window.playground.math && window.playground.math.label === {other}")
    math = browser.execute_script("return window.playground.math")
    loss, _ = run.net.loss_and_grads(run.inputs(np.array([math["x"]])), np.array([other]))
    assert math["loss"] == pytest.approx(loss, rel=1e-12)
    assert float(browser.find_element("id", "math-loss").text) == pytest.approx(loss, rel=1e-7)
    # a reset clears the math and its marker
    browser.find_element("id", "reset").click()
    wait(browser, "window.playground.math === null && document.getElementById('math').hidden")


def test_an_lr_change_keeps_the_run_and_its_epoch(server, browser):
    url, app = server
    open_page(browser, url, "?hidden=8&seed=4")
    browser.execute_script("""
        const pg = window.playground;
        return fetch('api/runs/' + pg.id + '/step', {method: 'POST',
          headers: {'Content-Type': 'application/json'}, body: JSON.stringify({steps: 100})})""")
    browser.find_element("id", "step").click()
    epoch = wait(browser, "window.playground.state.epoch >= 9 && window.playground.state.epoch")
    run_id = browser.execute_script("return window.playground.id")
    browser.execute_script("""
        const f = document.getElementById('controls');
        f.elements.lr.value = '0.02';
        f.elements.lr.dispatchEvent(new Event('change', {bubbles: true}));""")
    wait(browser, "window.playground.state.settings.lr === 0.02")
    assert browser.execute_script("return window.playground.id") == run_id
    assert browser.execute_script("return window.playground.state.epoch") == epoch
    assert "the run goes on" in browser.find_element("id", "notice").text
    assert api_run(app, browser).run_settings.lr == 0.02
    # an architecture change resets, and says so
    browser.execute_script("""
        const f = document.getElementById('controls');
        f.elements.hidden.value = '6';
        f.elements.hidden.dispatchEvent(new Event('change', {bubbles: true}));""")
    wait(browser, f"window.playground.id !== '{run_id}'")
    assert "hidden changed: a new run started" in browser.find_element("id", "notice").text
    assert browser.execute_script("return window.playground.state.epoch") == 0


def measure(browser, seconds=3.0):
    """Epochs per second of the page's own loop, and its step replies' size."""
    browser.find_element("id", "run").click()
    wait(browser, "window.playground.running")
    time.sleep(0.5)
    e0, t0 = browser.execute_script("return window.playground.state.epoch"), time.monotonic()
    time.sleep(seconds)
    e1, t1 = browser.execute_script("return window.playground.state.epoch"), time.monotonic()
    size = browser.execute_script("return window.playground.lastReplyBytes")
    browser.find_element("id", "run").click()
    wait(browser, "!window.playground.running && !window.playground.busy")
    return (e1 - e0) / (t1 - t0), size


def test_speed_and_reply_size_do_not_grow_with_the_epochs(server, browser):
    url, app = server
    open_page(browser, url, "?points=100&hidden=8&seed=5")
    early_speed, early_size = measure(browser)
    assert browser.execute_script("return window.playground.state.epoch") < 1000
    run = api_run(app, browser)
    while run.epoch < 4500:
        run.advance(500)
    late_speed, late_size = measure(browser)
    assert browser.execute_script("return window.playground.history.length") == run.epoch + 1
    assert late_size < 1.15 * early_size, (early_size, late_size)
    assert late_speed > 0.6 * early_speed, (early_speed, late_speed)


@pytest.mark.parametrize("width,height", [(1440, 1000), (800, 600), (390, 844)])
def test_every_screen_has_no_sideways_scroll_and_the_plane_whole(server, browser, width,
                                                                 height):
    url, _ = server
    browser.set_window_size(width, height)
    try:
        open_page(browser, url, "?hidden=16,16,8&features=x1,x2,x1sq,x2sq,x1x2,sinx1,sinx2")
        show_point(browser, 0)
        geometry = browser.execute_script("""
            const d = document.documentElement;
            const r = (id) => document.getElementById(id).getBoundingClientRect();
            return {scroll: d.scrollWidth, client: d.clientWidth, plane: r('regions'),
                    run: r('run'), step: r('step'), inner: window.innerHeight};""")
        assert geometry["scroll"] <= geometry["client"], geometry
        plane = geometry["plane"]
        assert plane["left"] >= 0 and plane["right"] <= geometry["client"]
        assert plane["width"] >= min(300, width - 60)
        assert plane["bottom"] <= geometry["inner"] or plane["height"] <= geometry["inner"]
        for button in ("run", "step"):
            assert 0 <= geometry[button]["left"] and geometry[button]["right"] <= geometry["client"]
            assert geometry[button]["top"] >= 0 and geometry[button]["bottom"] <= geometry["inner"]
    finally:
        browser.set_window_size(1300, 1100)


def test_a_stopped_server_is_named_with_what_to_do(browser):
    from werkzeug.serving import make_server

    from handprop.playground import create_app

    srv = make_server("127.0.0.1", 0, create_app(), threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    open_page(browser, f"http://127.0.0.1:{srv.port}/", "?hidden=4")
    srv.shutdown()
    srv.server_close()
    browser.find_element("id", "step").click()
    text = wait(browser, "!document.getElementById('error').hidden && "
                         "document.getElementById('error').textContent")
    assert "the server does not answer" in text and "press Reset" in text
    assert "Failed to fetch" not in text


def test_a_bad_setting_leaves_a_visible_consistent_state(server, browser):
    url, _ = server
    open_page(browser, url, "?dataset=foo")
    text = wait(browser, "!document.getElementById('error').hidden && "
                         "document.getElementById('error').textContent")
    assert "dataset must be one of moons" in text and "got 'foo'" in text
    assert browser.execute_script("return document.getElementById('step').disabled")
    assert browser.find_element("id", "no-run").is_displayed()
    assert browser.execute_script("return document.querySelector('[data-field=dataset]')"
                                  ".classList.contains('bad')")
    # with a run: a bad value is not applied, and the page says the run goes on
    open_page(browser, url, "?hidden=8")
    run_id = browser.execute_script("return window.playground.id")
    browser.execute_script("""
        const f = document.getElementById('controls');
        f.elements.lr.value = '-1';
        f.elements.lr.dispatchEvent(new Event('change', {bubbles: true}));""")
    text = wait(browser, "!document.getElementById('error').hidden && "
                         "document.getElementById('error').textContent")
    assert "lr must be a number > 0, got '-1'" in text and "the run goes on" in text
    assert browser.execute_script("return window.playground.id") == run_id
    assert not browser.execute_script("return document.getElementById('step').disabled")


def test_k_classes_regression_and_the_view_options(server, browser):
    url, _ = server
    open_page(browser, url, "?dataset=blobs&classes=4&hidden=8&show_test=true&discretize=true")
    assert browser.execute_script("return window.playground.state.classes") == 4
    assert browser.execute_script("return document.getElementById('show-test').checked")
    assert "class 3" in browser.find_element("id", "legend").text or browser.execute_script(
        "return window.playground.state.classes") == 4
    colours = browser.execute_script("""
        const c = document.getElementById('regions').getContext('2d');
        const d = c.getImageData(0, 0, 360, 360).data, seen = new Set();
        for (let i = 0; i < d.length; i += 4 * 31) seen.add(d.slice(i, i + 3).join(','));
        return seen.size;""")
    assert colours >= 4
    open_page(browser, url, "?dataset=plane&hidden=8")
    assert browser.execute_script("return window.playground.state.kind") == "regression"
    assert "prediction" in browser.find_element("id", "legend").text


def test_the_form_is_the_tables(server, browser):
    """Every field of the page comes from the data's settings and the
    parameter table, with its default: none is listed by the page."""
    from handprop.playground import DATA
    from handprop.train.parameters import PARAMETERS, names_in

    url, _ = server
    open_page(browser, url)
    fields = browser.execute_script(
        "return [...document.querySelectorAll('[data-field]')].map((f) => f.dataset.field)")
    assert sorted(fields) == sorted([*DATA, *names_in("playground")])  # each once
    values = browser.execute_script("""
        const out = {};
        for (const name of Object.keys(window.playground.params)) {
          const e = document.getElementById('controls').elements[name];
          if (e) out[name] = e.value;
        }
        return out;""")
    for name in names_in("playground"):
        p = PARAMETERS[name]
        assert values[name] == p.text(p.default_for("playground")), name
    live = browser.execute_script(
        "return [...document.querySelectorAll('.field.live')].map((f) => f.dataset.field)")
    assert set(live) == {n for n, p in PARAMETERS.items() if p.live}


def test_a_preset_trains_its_runs_side_by_side_with_their_settings_written(server, browser):
    url, app = server
    open_page(browser, url)
    buttons = browser.execute_script(
        "return [...document.querySelectorAll('#presets button')].map((b) => b.textContent)")
    from handprop.playground import PRESETS

    assert buttons == list(PRESETS)
    browser.execute_script("[...document.querySelectorAll('#presets button')]"
                           ".find((b) => b.textContent === 'hidden units').click()")
    wait(browser, "window.playground.compare && window.playground.compare.runs.length === 3 && "
                  "window.playground.compare.runs.every((r) => r.state.epoch >= 2)")
    titles = browser.execute_script(
        "return [...document.querySelectorAll('#compare-runs h3')].map((h) => h.textContent)")
    assert titles == [", ".join(f"{k} {v}" for k, v in run.items()).replace(", ", " · ")
                      for run in PRESETS["hidden units"]["runs"]]
    assert browser.find_element("id", "compare").is_displayed()
    assert not browser.find_element("id", "view").is_displayed()
    ids = browser.execute_script("return window.playground.compare.runs.map((r) => r.id)")
    hidden = [app.config["RUNS"].get(i).settings["hidden"] for i in ids]
    assert hidden == [[int(v) for v in run["hidden"].split(",")]
                      for run in PRESETS["hidden units"]["runs"]]
    browser.find_element("id", "compare-close").click()
    wait(browser, "window.playground.compare === null && !window.playground.running")
