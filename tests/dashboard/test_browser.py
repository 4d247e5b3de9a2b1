"""The dashboard in a real browser (Debian's chromium driven by Playwright) against a real ``persys up``
cluster (etcd, API, controllers, agent on dockerd) whose gateway logs in through the stand-in GitHub.

One walk through what a person does: log in, watch a new workload reach Running without reloading,
kill its container and see the restart count rise, follow its logs, stop and start it (each confirmed
in a dialog, each in the audit trail under the GitHub user), reach a failing workload's logs in one
click from the list, use the keyboard; then a view-only user, who gets no buttons and a 403 when
forcing an action. A failing step saves a screenshot next to the test's files and names it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from persys.client import ApiClient
from tests.dashboard.helpers import bind
from tests.e2e.test_up import Cluster, docker, until, up_process
from tests.support.github import CLIENT_ID, CLIENT_SECRET, FakeGitHub, user

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT = 90_000  # ms Playwright waits for what the cluster does (a container start, a restart)
TICKER = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (make setup)")


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    fake = await FakeGitHub().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def cluster(tmp_path: Path, github: FakeGitHub) -> Iterator[Cluster]:
    with up_process(tmp_path, "ui") as c:
        c.extra = ("--github-client-id", CLIENT_ID, "--github-client-secret", CLIENT_SECRET,
                   "--github-url", github.url, "--github-api-url", github.api_url)
        yield c


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


def workload(name: str, command: str, restart: str = "Always") -> dict[str, Any]:
    return {"apiVersion": "persys.dev/v1", "kind": "Workload", "metadata": {"name": name, "namespace": "default"},
            "spec": {"image": "persys/busybox:local", "command": ["sh", "-c", command], "restartPolicy": restart,
                     "network": "host", "backoff": {"initialSeconds": 2, "maxSeconds": 10}}}


@contextlib.asynccontextmanager
async def screenshot_on_failure(page: Page, path: Path) -> AsyncIterator[None]:
    try:
        yield
    except BaseException as e:
        with contextlib.suppress(Exception):
            await page.screenshot(path=str(path), full_page=True)
        raise AssertionError(f"{e}\nscreenshot: {path}") from e


async def logged_in(browser: Browser, cluster: Cluster, github: FakeGitHub, login: str, path: str) -> Page:
    """A new browser context that opens ``path`` and is sent through GitHub's web flow as ``login``."""
    github.web_user = user(login)
    context: BrowserContext = await browser.new_context(ignore_https_errors=True)
    page = await context.new_page()
    await page.goto(f"https://127.0.0.1:{cluster.ports['gateway-port']}{path}")
    await expect(page.locator(".who")).to_contain_text(f"github:{login}")
    return page


async def live(page: Page) -> None:
    """Wait until the page's live stream is open."""
    await expect(page.locator("body")).to_have_attribute("data-live", "open", timeout=WAIT)


async def confirm(page: Page, action: str) -> None:
    await page.locator(f'#actions button[data-action="{action}"]').click()
    await expect(page.locator("#confirm")).to_be_visible()
    await expect(page.locator("#confirm-text")).to_contain_text(f"{action.capitalize()} workload default/web?")
    await page.locator("#confirm-ok").click()
    await expect(page.locator("#notice")).to_contain_text(f"{action} requested")


async def test_the_dashboard_in_a_browser(cluster: Cluster, github: FakeGitHub, browser: Browser,
                                          tmp_path: Path) -> None:
    cluster.start()
    await until("config.yaml", lambda: (cluster.home / "config.yaml").exists(), cluster)
    config = yaml.safe_load((cluster.home / "config.yaml").read_text())
    async with ApiClient(config["server"], ca=Path(config["ca"]), cert=Path(config["cert"]),
                         key=Path(config["key"])) as admin:
        await until("API ready", lambda: admin.list("Node", None), cluster)
        await bind(admin, "octocat", "edit")
        await bind(admin, "viewer", "view")
        page = await logged_in(browser, cluster, github, "octocat", "/ui/workloads?namespace=default")
        async with screenshot_on_failure(page, tmp_path / "dashboard-failure.png"):
            await walk_through(page, admin, cluster)
        viewer = await logged_in(browser, cluster, github, "viewer", "/ui/workloads/default/web")
        async with screenshot_on_failure(viewer, tmp_path / "viewer-failure.png"):
            await expect(viewer.locator("h1")).to_have_text("Workload web")
            await expect(viewer.locator("button[data-action]")).to_have_count(0)
            forced = await viewer.request.post(viewer.url.split("/ui/")[0] + "/ui/actions/default/web/stop",
                                               headers={"X-Persys-UI": "1"})
            assert forced.status == 403 and "github:viewer" in (await forced.json())["message"]
        assert (await admin.get("Workload", "web")).spec["desiredState"] == "Running"


async def walk_through(page: Page, admin: ApiClient, cluster: Cluster) -> None:
    await expect(page.get_by_role("heading", level=1)).to_have_text("Workloads")
    await live(page)
    await page.evaluate("window.notReloaded = true")

    # a new workload appears in the open list and reaches Running there, without a reload
    await admin.apply_raw(workload("web", TICKER))
    row = page.locator('tr[data-key="default/web"]')
    await expect(row.locator('[data-col="PHASE"]')).to_have_text("Running", timeout=WAIT)
    assert await page.evaluate("window.notReloaded") is True

    # keyboard and labels: the skip link comes first, "/" jumps to the search box, inputs have labels
    await page.keyboard.press("Tab")
    await expect(page.locator(".skip")).to_be_focused()
    await page.locator("h1").click()
    await page.keyboard.press("/")
    await expect(page.get_by_label("Search")).to_be_focused()
    await expect(page.get_by_label("Labels")).to_be_visible()

    # the detail page: kill the container, the restart count rises live
    await row.get_by_role("link", name="web", exact=True).click()
    await expect(page.locator("h1")).to_have_text("Workload web")
    await live(page)
    await page.evaluate("window.notReloaded = true")
    await expect(page.locator('[data-field="restarts"]')).to_have_text("0")
    web = await admin.get("Workload", "web")
    docker("kill", str(web.status["containerID"]))
    await expect(page.locator('[data-field="restarts"]')).to_have_text("1", timeout=WAIT)
    await expect(page.locator('[data-field="phase"]')).to_have_text("Running", timeout=WAIT)
    assert await page.evaluate("window.notReloaded") is True

    # logs: the tail is on the page; Follow adds the lines that come after
    await expect(page.locator("#log")).to_contain_text("tick 1")
    shown = await page.locator("#log").inner_text()
    await page.get_by_label("Follow").check()
    await expect(page.locator("#log")).not_to_have_text(shown, timeout=WAIT)

    # stop and start, each confirmed; Escape cancels the dialog and does nothing
    await page.locator('#actions button[data-action="stop"]').focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#confirm")).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(page.locator("#confirm")).to_be_hidden()
    await expect(page.locator('#actions button[data-action="stop"]')).to_be_focused()
    assert (await admin.get("Workload", "web")).spec["desiredState"] == "Running"
    await confirm(page, "stop")
    await expect(page.locator('[data-field="phase"]')).to_have_text("Stopped", timeout=WAIT)
    await confirm(page, "start")
    await expect(page.locator('[data-field="phase"]')).to_have_text("Running", timeout=WAIT)
    audited = await until("the actions in the audit trail", lambda: actions_audited(cluster), cluster)
    assert audited == ["Stopped", "Running"]

    # a failing workload: from the list, its logs are one click away
    await admin.apply_raw(workload("crasher", "echo crash-output; exit 1", restart="Never"))
    await page.goto(page.url.split("/ui/")[0] + "/ui/workloads?namespace=default")
    logs = page.locator('tr[data-key="default/crasher"] a.logs')
    await expect(logs).to_be_visible(timeout=WAIT)
    await logs.click()
    await expect(page.locator("h1")).to_have_text("Workload crasher")
    await expect(page.locator("#logs")).to_be_focused()
    await expect(page.locator("#log")).to_contain_text("crash-output", timeout=WAIT)


def actions_audited(cluster: Cluster) -> list[str]:
    """The desired states github:octocat set, in order, from the API's audit trail (files under the home)."""
    path = cluster.home / "audit" / "audit.log"
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [str((e.get("requestObject") or {}).get("desiredState", "?")) for e in events
            if "/desired-state" in str(e.get("requestURI")) and e.get("stage") == "ResponseComplete"
            and (e.get("impersonatedUser") or {}).get("username") == "github:octocat"
            and (e.get("responseStatus") or {}).get("code") == 200]
