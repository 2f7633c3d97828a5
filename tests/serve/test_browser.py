"""The page in a real browser: headless Chromium's fake microphone speaks the shipped question.

The page records it (WebAudio), stops by itself when the speech ends, sends 16 kHz WAV over the websocket,
shows the streamed answer and plays each audio chunk as it arrives. Needs Debian's chromium and
chromium-driver (`make setup` installs them as root); a screenshot goes to test-artifacts/serve_page.png."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest


webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[dev]'")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ARTIFACTS = Path(os.environ.get("TTT_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


@pytest.fixture
def chromium(question_wav):
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no chromium/chromedriver on PATH: apt-get install -y chromium chromium-driver "
                    "(make setup does this when run as root)")
    profile = tempfile.mkdtemp(prefix="ttt-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1200,900",
                 "--autoplay-policy=no-user-gesture-required",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={question_wav}%noloop"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_page_hears_the_question_and_streams_a_spoken_answer(live_server, chromium):
    url, _ = live_server
    chromium.get(url + "/")
    wait = WebDriverWait(chromium, 30)
    record = chromium.find_element(By.ID, "record")
    wait.until(lambda d: record.is_enabled())
    assert len(chromium.find_elements(By.CSS_SELECTOR, "#settings input[type=range]")) >= 8
    options = chromium.find_elements(By.CSS_SELECTOR, "select#knob-final_span option")
    assert [o.get_attribute("value") for o in options] == ["cached", "official"]  # a menu, not a slider
    record.click()  # the fake microphone plays question.wav once; the page stops when it goes quiet
    WebDriverWait(chromium, 60).until(lambda d: d.execute_script("return document.body.dataset.turnsDone") == "1"
                                      or d.find_elements(By.CSS_SELECTOR, "#conversation li.error"))
    errors = [e.text for e in chromium.find_elements(By.CSS_SELECTOR, "#conversation li.error")]
    assert not errors, errors
    answer = chromium.find_element(By.CSS_SELECTOR, "#conversation li.assistant .text").text
    heard = chromium.find_element(By.CSS_SELECTOR, "#conversation li.user .meta").text
    stats = chromium.find_element(By.ID, "stats")
    received = int(stats.get_attribute("data-received"))
    assert "nine" in answer.lower().split() and received >= 1, (answer, received)
    # every chunk that arrived is decoded and played to its end by the page's AudioContext
    wait.until(lambda d: int(stats.get_attribute("data-played")) == received)
    assert "six plus three" in heard.lower(), heard

    # a slider changes this connection's decoding; a typed question is answered in text and speech too
    chromium.execute_script("const s = document.getElementById('knob-steps'); s.value = 2;"
                            "s.dispatchEvent(new Event('change'));")
    wait.until(lambda d: d.find_element(By.ID, "settings").get_attribute("data-confirmed"))
    assert json.loads(chromium.find_element(By.ID, "settings").get_attribute("data-confirmed"))["steps"] == 2
    chromium.execute_script("const s = document.getElementById('knob-final_span'); s.value = 'official';"
                            "s.dispatchEvent(new Event('change'));")  # a menu sends its string
    wait.until(lambda d: json.loads(d.find_element(By.ID, "settings").get_attribute("data-confirmed"))
               .get("final_span") == "official")
    chromium.find_element(By.ID, "question").send_keys("what is six plus three")
    chromium.find_element(By.ID, "send").click()
    wait.until(lambda d: d.execute_script("return document.body.dataset.turnsDone") == "2")
    answers = chromium.find_elements(By.CSS_SELECTOR, "#conversation li.assistant .text")
    assert len(answers) == 2 and "nine" in answers[1].text.lower().split(), [a.text for a in answers]
    wait.until(lambda d: int(stats.get_attribute("data-played")) == int(stats.get_attribute("data-received")))
    assert int(stats.get_attribute("data-received")) > received
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    chromium.save_screenshot(str(ARTIFACTS / "serve_page.png"))  # both turns listed, steps at 2
    chromium.find_element(By.ID, "reset").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#conversation li"))
    severe = [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
