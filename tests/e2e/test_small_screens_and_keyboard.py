"""The pages work on a 375 px wide phone and with the keyboard alone.

On a phone, the page itself never scrolls sideways (a wide table scrolls inside its
``.table-wrap``, which is fine) and the menu, folded away, opens and leads to the pages. With the
keyboard alone, a user signs in and prechecks and sends a list, every focused element showing a
visible focus ring, and the skip link jumps over the menu to the content.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.support import E2E, REGISTERED_ON, LiveServer, World, issue_letter, sign_in

pytestmark = E2E

PHONE = {"width": 375, "height": 740}

# Elements sticking out of the viewport, outside any scrolling .table-wrap: the culprits when the
# page is wider than the screen.
OVERFLOWING = """() => {
  const width = window.innerWidth;
  const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "")
    + (typeof e.className === "string" && e.className ? "." + e.className.trim().split(/\\s+/).join(".") : "");
  return [...document.querySelectorAll("body *")]
    .filter((e) => !e.closest(".table-wrap") && e.getBoundingClientRect().right > width + 0.5)
    .filter((e, _, all) => !all.includes(e.parentElement))
    .slice(0, 5)
    .map((e) => `${e.parentElement ? name(e.parentElement) + " > " : ""}${name(e)} `
      + `(right edge ${Math.round(e.getBoundingClientRect().right)} px: "${(e.innerText || "").slice(0, 50)}")`);
}"""


def overflow_problem(page: Page, what: str) -> str | None:
    """None when the page fits the screen's width; otherwise what sticks out."""
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if scroll_width <= inner_width:
        return None
    culprits = "; ".join(page.evaluate(OVERFLOWING)) or "(no single element found)"
    return f"{what} ({page.url}) is {scroll_width} px wide on a {inner_width} px screen; sticking out: {culprits}"


def paste_and_check(page: Page, lines: list[str]) -> None:
    page.get_by_label("Vehicles, pasted from a spreadsheet").fill("\n".join(lines))
    page.get_by_role("button", name="Check the vehicles").click()
    expect(page.get_by_role("heading", name=re.compile(r"\d+ vehicles? checked"))).to_be_visible()


def vehicle_lines(vins: list[str], destination: str = "KZ") -> list[str]:
    return [f"{vin},Example,E1,{REGISTERED_ON.isoformat()},{destination}" for vin in vins]


def test_main_pages_fit_a_phone_screen_and_the_menu_opens(
    live_server: LiveServer,
    world: World,
    new_context: Callable[..., BrowserContext],
    shoot: Callable[[Page, str], Path],
) -> None:
    request_id, number = issue_letter(live_server, world.take_vins(2))
    problems: list[str] = []

    def check(page: Page, what: str) -> None:
        problem = overflow_problem(page, what)
        if problem:
            problems.append(problem)

    visitor = new_context(viewport=PHONE).new_page()
    visitor.goto("/login")
    check(visitor, "the login page")
    shoot(visitor, "login")
    visitor.goto("/verify")
    check(visitor, "the verify page")
    shoot(visitor, "verify")

    exporter = new_context(viewport=PHONE).new_page()
    sign_in(exporter, world.exporter_user)
    # The menu is folded away on a phone; it opens and leads to the pages.
    menu = exporter.get_by_role("navigation", name="Main")
    exporter.goto("/precheck")
    expect(menu.get_by_role("link", name="Requests")).to_be_hidden()
    exporter.locator("details.menu > summary").click()
    expect(menu.get_by_role("link", name="Requests")).to_be_visible()
    check(exporter, "the page with its menu open")
    shoot(exporter, "menu-open")
    menu.get_by_role("link", name="Requests").click()
    expect(exporter.get_by_role("heading", level=1)).to_have_text("My requests")
    check(exporter, "the list of requests")
    shoot(exporter, "requests")

    exporter.goto("/precheck")
    check(exporter, "the precheck page")
    shoot(exporter, "precheck")
    others = world.take_vins(1, other=True)
    paste_and_check(
        exporter, [*vehicle_lines(world.take_vins(2)), *vehicle_lines(others), *vehicle_lines(["LGX12345678901234"])]
    )
    check(exporter, "the verdict table")
    shoot(exporter, "verdicts")

    for path, what in (
        (f"/requests/{request_id}", "the request page"),
        (f"/letters/{number}", "the letter page"),
        ("/letters", "the list of letters"),
        ("/account", "the account page"),
    ):
        exporter.goto(path)
        expect(exporter.get_by_role("heading", level=1)).to_be_visible()
        check(exporter, what)
        shoot(exporter, what.removeprefix("the ").replace(" ", "-"))

    staff = new_context(viewport=PHONE).new_page()
    sign_in(staff, world.aftersales)
    # The folded menu opens from the keyboard too.
    staff.goto("/requests")
    staff_menu = staff.get_by_role("navigation", name="Main")
    expect(staff_menu.get_by_role("link", name="Outlets")).to_be_hidden()
    press_until(staff, "Tab", named("Menu"))
    staff.keyboard.press("Enter")
    expect(staff_menu.get_by_role("link", name="Outlets")).to_be_visible()
    press_until(staff, "Tab", named("Outlets"))
    staff.keyboard.press("Enter")
    expect(staff.get_by_role("heading", level=1)).to_be_visible()
    assert staff.url.endswith("/registry/outlets"), staff.url
    for path, what in (
        ("/requests", "the review queue"),
        (f"/requests/{request_id}", "the decided request, as after-sales sees it"),
        ("/registry/outlets", "the outlet registry"),
        (f"/letters/{number}", "the letter page, as after-sales sees it"),
    ):
        staff.goto(path)
        expect(staff.get_by_role("heading", level=1)).to_be_visible()
        check(staff, what)
        shoot(staff, re.sub(r"[^a-z]+", "-", what.removeprefix("the ")))
    assert not problems, "pages wider than a 375 px phone:\n  " + "\n  ".join(problems)


# -- the keyboard alone --------------------------------------------------------------------------

FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const style = getComputedStyle(e);
  const label = e.labels && e.labels.length ? e.labels[0].innerText : (e.getAttribute("aria-label") || "");
  return {
    tag: e.tagName.toLowerCase(),
    id: e.id,
    type: e.getAttribute("type") || "",
    text: (e.innerText || e.value || "").trim(),
    label: label.replace(/\\s*\\*\\s*$/, "").trim(),
    focusVisible: e.matches(":focus-visible"),
    // Chromium's date field takes the focus in its parts (month, day, year, then the calendar
    // button), which it highlights itself; on the calendar button the field matches neither
    // :focus nor :focus-visible, so its own outline cannot be read.
    nativeParts: /^(date|time|datetime-local|month|week)$/.test(e.type),
    outline: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0,
    shadow: style.boxShadow !== "none",
    inView: (() => {
      const r = e.getBoundingClientRect();
      const x = r.left + r.width / 2, y = r.top + r.height / 2;  // its middle is on the screen
      return r.width > 0 && r.height > 0 && x >= 0 && y >= 0 && x <= window.innerWidth && y <= window.innerHeight;
    })(),
  };
}"""


def focused(page: Page) -> dict[str, Any] | None:
    return page.evaluate(FOCUSED)  # type: ignore[no-any-return]


def assert_visible_focus(page: Page) -> dict[str, Any]:
    element = focused(page)
    assert element is not None, "nothing has the focus"
    if not element["nativeParts"]:
        assert element["focusVisible"], f"the focused {element} does not match :focus-visible"
        assert element["outline"] or element["shadow"], f"the focused {element} shows no focus ring"
    assert element["inView"], f"the focused {element} is not on the screen"
    return element


def press_until(page: Page, key: str, wanted: Callable[[dict[str, Any]], bool], *, limit: int = 60) -> dict[str, Any]:
    """Press Tab (or Shift+Tab) until the focus is on the wanted element; every element passed
    on the way must show its focus."""
    seen = []
    for _ in range(limit):
        page.keyboard.press(key)
        element = assert_visible_focus(page)
        if wanted(element):
            return element
        seen.append(element["label"] or element["text"][:30] or element["tag"])
    raise AssertionError(f"{key} never reached the element; it went through: {seen}")


def named(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["label"] == name or e["text"] == name


def test_sign_in_and_precheck_with_the_keyboard_alone(
    live_server: LiveServer, world: World, page: Page, shoot: Callable[[Page, str], Path]
) -> None:
    page.goto("/login")
    # The e-mail field has the focus on arrival.
    element = focused(page)
    assert element is not None, "nothing has the focus on the login page"
    assert element["label"] == "E-mail", f"the focus is on {element}, not on the e-mail field"
    page.keyboard.type(world.exporter_user.email)
    page.keyboard.press("Tab")
    assert assert_visible_focus(page)["label"] == "Password"
    page.keyboard.type("correct-horse-battery")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/precheck$"))

    # Read the pages in English: the language switch is a button like any other.
    if page.locator("html").get_attribute("lang") != "en":
        press_until(page, "Tab", named("English"))
        page.keyboard.press("Enter")
        page.wait_for_load_state()
    expect(page.locator("html")).to_have_attribute("lang", "en")

    # The first Tab reaches the skip link, shown on the screen; it jumps over the header and menu.
    page.keyboard.press("Tab")
    skip = assert_visible_focus(page)
    assert skip["text"] == "Skip to content", f"the first Tab reached {skip}, not the skip link"
    shoot(page, "skip-link")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main", "the skip link did not move the focus to the content"
    page.keyboard.press("Tab")
    after_skip = assert_visible_focus(page)
    in_main = page.evaluate("!!document.activeElement.closest('main')")
    assert in_main, f"after the skip link, Tab went to {after_skip}, outside the content"

    # Fill the list, go back (Shift+Tab) to the reference, and check with Space on the button.
    vins = world.take_vins(2)
    press_until(page, "Tab", named("Vehicles, pasted from a spreadsheet"))
    page.keyboard.type("\n".join(vehicle_lines(vins)))
    press_until(page, "Shift+Tab", named("Reference (optional)"))
    page.keyboard.type("KEYBOARD-CONTRACT-1")
    press_until(page, "Tab", named("Check the vehicles"))
    shoot(page, "list-typed")
    page.keyboard.press("Space")
    expect(page.get_by_role("heading", name="2 vehicles checked")).to_be_visible()
    for vin in vins:
        expect(page.get_by_role("row").filter(has_text=vin)).to_contain_text("Letter can be issued")
    shoot(page, "verdicts")

    # Send the part: the focus starts at the top again after the page loaded.
    send = f"Send request to {world.maker.name_en}"
    press_until(page, "Tab", named(send), limit=120)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/requests/\d+$"))
    expect(page.locator(".flashes")).to_contain_text(f"sent to {world.maker.code} with 2 vehicles")
    expect(page.get_by_role("main")).to_contain_text("KEYBOARD-CONTRACT-1")
    shoot(page, "request-sent")
