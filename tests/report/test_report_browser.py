"""The report page in a real browser: headless Chromium, offline, loading the page from disk.

It renders without a console error or a network request, every image loads, the curves draw
(one SVG trace per curve and panel, hover labels, legend toggles), the comparison widget
responds (image picker, rate slider, synchronized zoom and pan), and hostile names stay text.
Skipped, saying how to install it, where Chromium or its driver is missing
(``apt-get install -y chromium chromium-driver``); CI installs them.
"""

from __future__ import annotations

import json
import re

import pytest
from report_helpers import CLASS_NAMES, HOSTILE_ID

from mocodec.report.browser import BrowserMissing, find_browser, headless_chromium, open_page, screenshot
from mocodec.report.build import write_report
from mocodec.report.page import DATA_ID


@pytest.fixture(scope="module")
def browser():
    try:
        find_browser()
    except BrowserMissing as exc:
        pytest.skip(f"needs headless Chromium: {exc}")
    pytest.importorskip("selenium", reason="needs selenium: pip install selenium (the dev extra)")
    with headless_chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def page(report_sweeps, tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "page.html"
    title = "<script>alert('title')</script> results"
    return write_report([report_sweeps["rd"], report_sweeps["task"]], out, anchor="jpeg", bootstrap=20, title=title)


def _data(driver) -> dict:
    return json.loads(driver.execute_script(f"return document.getElementById('{DATA_ID}').textContent"))


def _transforms(comparison) -> list[str]:
    return [img.get_attribute("style") for img in comparison.find_elements("css selector", ".viewport img")]


def test_the_page_renders_offline_and_responds(browser, page, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    check = open_page(browser, page)
    assert check.problems == [], check.problems
    assert check.requests == [] and check.console_errors == []
    shot = screenshot(browser, tmp_path / "page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(NoAlertPresentException):  # nothing in the names ran
        browser.switch_to.alert  # noqa: B018
    assert browser.title == "<script>alert('title')</script> results"
    data = _data(browser)

    # the curves: every trace of the data drawn as an SVG trace, in every figure
    drawn = browser.execute_script(
        "return Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => d.querySelectorAll('.scatterlayer g.trace').length)"
    )
    assert drawn == [len(s["figure"]["data"]) for s in data["sections"]] and all(drawn)
    assert check.report["traces"] == drawn
    # every crop loaded: the originals and every decoded point of every image
    crops = sum(1 + sum(len(p) for p in image["points"].values()) for s in data["sections"] for image in s["comparison"]["images"])
    assert check.report["images"] == check.report["imagesLoaded"] == crops
    assert browser.execute_script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")

    # hovering a point shows its codec, quality and bpp
    first = data["sections"][0]["key"]
    point = browser.find_element("css selector", f"#{first}-figure .scatterlayer g.trace .points path")
    ActionChains(browser).move_to_element(point).perform()
    hover = browser.find_element("css selector", f"#{first}-figure .hoverlayer .hovertext").text
    assert re.search(r"quality \d+", hover) and "bpp" in hover
    # a click on a legend entry hides that curve in every panel
    toggle = browser.find_element("css selector", f"#{first}-figure .legend .traces .legendtoggle")
    ActionChains(browser).move_to_element(toggle).click().perform()
    browser.execute_script("return new Promise(r => setTimeout(r, 800))")  # plotly waits out a double click first
    hidden = browser.execute_script(f"return document.getElementById('{first}-figure').data.map(t => [t.name, t.visible])")
    curve = hidden[0][0]
    assert all(visible == "legendonly" for name, visible in hidden if name == curve)
    assert all(visible in (None, True) for name, visible in hidden if name != curve)

    # the comparison of the task section: the hostile id and class names are text
    task = data["sections"][1]
    comparison = browser.find_element("css selector", f"#{task['key']}-comparison")
    buttons = comparison.find_elements("css selector", ".picker button")
    assert [b.text for b in buttons] == [i["id"] for i in task["comparison"]["images"]] and buttons[0].text == HOSTILE_ID
    captions = comparison.text
    assert any(name in captions for name in CLASS_NAMES)
    assert not comparison.find_elements("css selector", "figcaption img, figcaption script")  # names made no elements

    # the rate slider moves every codec to the points nearest the anchor's new rate
    output = comparison.find_element("css selector", "output")
    slider = comparison.find_element("css selector", "input[type=range]")
    before = (output.text, [i.get_attribute("src")[-40:] for i in comparison.find_elements("css selector", ".viewport img")])
    slider.send_keys(Keys.ARROW_LEFT if slider.get_attribute("value") == slider.get_attribute("max") else Keys.ARROW_RIGHT)
    after = (output.text, [i.get_attribute("src")[-40:] for i in comparison.find_elements("css selector", ".viewport img")])
    assert after[0] != before[0] and after[1][0] == before[1][0] and after[1][1:] != before[1][1:]  # the original stays

    # zoom: every panel follows, pixels shown as pixels; drag: every panel pans alike
    comparison.find_element("css selector", "button[data-zoom='4']").click()
    zoomed = _transforms(comparison)
    assert len(set(zoomed)) == 1 and "scale(" in zoomed[0] and zoomed != before
    assert all("pixelated" in img.get_attribute("class") for img in comparison.find_elements("css selector", ".viewport img"))
    viewport = comparison.find_elements("css selector", ".viewport")[1]
    ActionChains(browser).click_and_hold(viewport).move_by_offset(-30, -20).release().perform()
    panned = _transforms(comparison)
    assert len(set(panned)) == 1 and panned != zoomed

    # another image: the picker marks it and every panel shows it
    buttons[1].click()
    assert buttons[1].get_attribute("aria-pressed") == "true" and buttons[0].get_attribute("aria-pressed") == "false"
    assert comparison.find_elements("css selector", ".viewport img")[0].get_attribute("src") == task["comparison"]["images"][1]["original"]
    assert open_page(browser, page).problems == []  # and the whole page once more, from a fresh load
