"""The playground's speed as a page sees it: epochs per second of the page's
own Run loop in headless Chromium, and the bytes of a step reply, near epoch
50 and near epoch 5,000 (the server's run is advanced to 4,800 in between).

    python benchmarks/playground_speed.py [QUERY]

QUERY is the page's address query (default: the default settings, two moons
of 300 points, 8 hidden units, minibatches of 20).
"""

import logging
import os
import sys
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from werkzeug.serving import make_server

from handprop.playground import create_app


def wait(driver, script, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(script)


def measure(driver, seconds: float) -> tuple[float, int, int]:
    driver.find_element("id", "run").click()
    wait(driver, "window.playground.running")
    time.sleep(0.5)
    e0, t0 = driver.execute_script("return window.playground.state.epoch"), time.monotonic()
    time.sleep(seconds)
    e1, t1 = driver.execute_script("return window.playground.state.epoch"), time.monotonic()
    size = driver.execute_script("return window.playground.lastReplyBytes")
    driver.find_element("id", "run").click()
    wait(driver, "!window.playground.running && !window.playground.busy")
    return (e1 - e0) / (t1 - t0), size, e1


def main(query: str = "") -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ.setdefault("SE_OFFLINE", "true")
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"http://127.0.0.1:{server.port}/{query}")
        wait(driver, "window.playground && window.playground.renders >= 1")
        speed, size, epoch = measure(driver, 2)
        print(f"near epoch 50:    {speed:5.1f} epochs/s, a step reply of {size:,} bytes "
              f"(at epoch {epoch})")
        run = app.config["RUNS"].get(driver.execute_script("return window.playground.id"))
        while run.epoch < 4800:
            run.advance(500)
        speed, size, epoch = measure(driver, 2)
        print(f"near epoch 5,000: {speed:5.1f} epochs/s, a step reply of {size:,} bytes "
              f"(at epoch {epoch})")
    finally:
        driver.quit()
        server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
