"""The screenshot of docs/playground.md: the playground's page in headless
Chromium after some training, with one point's math shown.

    python examples/playground_screenshot.py docs/figures/playground.png
"""

import logging
import os
import sys
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from werkzeug.serving import make_server

from handprop.playground import create_app


def main(out: str) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ.setdefault("SE_OFFLINE", "true")
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--no-first-run", "--window-size=1300,1250"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"http://127.0.0.1:{server.port}/?dataset=moons&points=300&noise=0.25"
                   f"&hidden=8,8&activation=relu&lr=0.1&momentum=0.9&batch=20&seed=0")
        time.sleep(1)
        driver.execute_script("return fetch('api/runs/' + window.playground.id + '/step', "
                              "{method: 'POST', headers: {'Content-Type': 'application/json'},"
                              " body: JSON.stringify({steps: 300})})")
        driver.find_element("id", "step").click()
        time.sleep(1)
        canvas = driver.find_element("id", "regions")
        ActionChains(driver).move_to_element_with_offset(canvas, 30, -40).click().perform()
        time.sleep(1)
        driver.save_screenshot(out)
    finally:
        driver.quit()
        server.shutdown()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "playground.png")
