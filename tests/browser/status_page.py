#!/usr/bin/python3
"""Drives the status page of a running `kuryer run` in the system's headless
Chromium (selenium + chromedriver): refused without the token, signed in
through the form, load timed with the Navigation Timing API, a dead letter
shown and replayed with its button, a screenshot taken. Prints one JSON
object; tests/it/browser.rs starts kuryer and checks the delivery.

Usage: status_page.py BASE_URL API_TOKEN DEAD_LETTER_ID SCREENSHOT.png
"""
import json
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def load_ms(driver):
    """Navigation start to load event end of the current page, in ms."""
    for _ in range(50):
        t = driver.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return n ? n.loadEventEnd - n.startTime : 0;"
        )
        if t and t > 0:
            return t
        time.sleep(0.05)
    return None


def main():
    base, token, dead_id, shot = sys.argv[1:5]
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    out = {}
    try:
        # Without the token: the sign-in form, nothing of the installation.
        driver.get(base + "/status")
        out["refused_title"] = driver.title
        out["refused_shows_channels"] = "Bulk channel" in driver.page_source
        # Sign in through the form.
        driver.find_element(By.NAME, "token").send_keys(token)
        driver.find_element(By.CSS_SELECTOR, "form[action='/status/login'] button").click()
        # click() may return before the redirect's page is loaded on a busy
        # machine: wait for the signed-in page's own element.
        WebDriverWait(driver, 20).until(
            lambda d: d.find_elements(By.ID, "channel-count")
        )
        out["title"] = driver.title
        out["first_load_ms"] = load_ms(driver)
        # Loads of the signed-in page, timed by the browser.
        loads = []
        for _ in range(3):
            driver.get(base + "/status")
            loads.append(load_ms(driver))
        out["load_ms"] = loads
        out["channel_count"] = driver.find_element(By.ID, "channel-count").text
        rows = driver.find_elements(By.ID, "dl-" + dead_id)
        out["dead_letter_shown"] = len(rows) == 1
        out["dead_letter_row"] = rows[0].text if rows else ""
        driver.save_screenshot(shot)
        # Replay from the page.
        rows[0].find_element(By.NAME, "replay").click()
        # The click submits a form; the answer (a redirect back to the page)
        # may not be loaded yet when click() returns on a busy machine.
        message = WebDriverWait(driver, 20).until(
            lambda d: d.find_element(By.ID, "message")
        )
        out["after_replay"] = message.text
        out["still_listed"] = len(driver.find_elements(By.ID, "dl-" + dead_id)) > 0
    finally:
        driver.quit()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
