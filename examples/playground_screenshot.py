"""The screenshots of docs/playground.md: the playground's page in headless
Chromium, at a laptop's, a tablet's and a phone's width, after some
training, with one point's math shown on the network.

    python examples/playground_screenshot.py docs/figures
    python examples/playground_screenshot.py docs/figures 1440x1000

writes playground_1440.png, playground_800.png and playground_390.png
(or the sizes given, WIDTHxHEIGHT) into the folder.
"""

import logging
import os
import sys
import threading
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from werkzeug.serving import make_server

from handprop.playground import create_app

SIZES = ((1440, 1000), (800, 900), (390, 844))
QUERY = ("?dataset=spiral&classes=3&points=600&noise=0.1&hidden=16,16&activation=tanh"
         "&lr=0.03&features=x1,x2,sinx1,sinx2&seed=0")


def shoot(driver, url: str, size: tuple[int, int], out: Path) -> None:
    width, height = size
    driver.set_window_size(width, height)
    driver.get(url + QUERY)
    for _ in range(100):
        if driver.execute_script("return window.playground && window.playground.renders >= 1"):
            break
        time.sleep(0.1)
    # train 2,000 minibatches (95 epochs) on the server, then one from the page
    driver.execute_script("""
        const pg = window.playground, step = () => fetch('api/runs/' + pg.id + '/step', {
          method: 'POST', headers: {'Content-Type': 'application/json'},
          body: JSON.stringify({steps: 500})});
        return step().then(step).then(step).then(step)""")
    driver.find_element("id", "step").click()
    time.sleep(1)
    # the math of a data point, its deltas lit on the network
    driver.execute_script("""
        const pg = window.playground, p = pg.points.train.X[3];
        pg.mathPoint = p; pg.mathLabel = null;""")
    driver.execute_script("document.querySelector('#stages [data-stage=backward]').click()")
    driver.find_element("id", "step").click()
    time.sleep(1.5)
    driver.execute_script("document.querySelector('#stages [data-stage=backward]').click()")
    driver.execute_script("window.scrollTo(0, 0)")
    # the whole page, as tall as it is
    full = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(full + 120, 4000))
    time.sleep(0.5)
    driver.save_screenshot(str(out))
    print(f"wrote {out} ({width} px wide)")


def main(folder: str, sizes=SIZES) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ.setdefault("SE_OFFLINE", "true")
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--no-first-run", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    Path(folder).mkdir(parents=True, exist_ok=True)
    try:
        for size in sizes:
            shoot(driver, f"http://127.0.0.1:{server.port}/", size,
                  Path(folder) / f"playground_{size[0]}.png")
    finally:
        driver.quit()
        server.shutdown()


if __name__ == "__main__":
    sizes = [tuple(int(v) for v in s.split("x")) for s in sys.argv[2:]] or SIZES
    main(sys.argv[1] if len(sys.argv) > 1 else ".", sizes)
