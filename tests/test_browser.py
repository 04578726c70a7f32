"""The reports as a person opens them: each page in headless Chromium, with the network cut off.

Chromium (Debian's ``chromium``) is driven over the DevTools protocol through a pipe
(``--remote-debugging-pipe``), with nothing but the standard library. Its host resolver maps every
name to nowhere and its proxy is a closed port, so a page that tried to fetch anything could not; the
protocol's network events then show that nothing but ``file:`` and ``data:`` URLs was even
requested. For every page: it loads, logs no console error and throws nothing, every ``<img>``
decodes, shap's interactive force plot draws its SVG, and markup from a CSV cell (the ``--id-col``
column and categorical columns) shows as text and never runs. Screenshots go to each test's
``tmp_path``.

The first test opens a deliberately broken page, so a harness that saw nothing cannot pass the others.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest
from conftest import mixed_frame, run_cli

SCRIPT_ID = "<script>window.__pwned=1</script>"
SCRIPT_BREAKOUT_CELL = "</script><script>window.__pwned=2</script>"
IMG_CELL = '<img src=x onerror="window.__pwned=3">'
COLUMN_NAME = '"><svg onload="window.__pwned=4">colour'
"""A column name with markup: it reaches the tables, the plots' labels and shap's force-plot data."""
PAYLOADS = (SCRIPT_ID, SCRIPT_BREAKOUT_CELL, IMG_CELL, COLUMN_NAME)
LONG_COLUMN = "noise_of_the_customer_account_average_monthly_transaction_amount_sensor_in_the_north_wing"
"""A long name with no space to wrap at: tables must still fit the window."""
EXPLAINED_ROWS, MAX_PLOTS = 8, 5

COMMAND_TIMEOUT = 30.0
"""Seconds any one DevTools command, page load or script may take before the test fails."""
SCREEN = {"width": 1200, "height": 900}
LOCAL_SCHEMES = ("file:", "data:", "about:")
NETWORK_ATTRIBUTE = re.compile(
    r"""(?:src|href|action|formaction|poster|srcset|data)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE
)
NETWORK_CSS = re.compile(r"""(?:url\(\s*["']?\s*(?:https?:)?//|@import)""", re.IGNORECASE)

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers give /dev/shm 64 MB
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    # No network: every host name resolves to nothing and every proxied request goes to a closed port.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--remote-debugging-pipe",
)


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("no Chromium on PATH: install Debian's chromium (apt-get install -y chromium)", pytrace=False)


class Chromium:
    """One headless Chromium process and its DevTools pipe: commands out, replies and events in."""

    def __init__(self, profile_dir: Path):
        self.log_path = profile_dir / "chromium.log"
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # Moved above fd 9 first, so that putting them on 3 and 4 in the child cannot clobber either.
        child_ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (commands_read, replies_write)]
        for fd in (commands_read, replies_write):
            os.close(fd)

        def on_fds_3_and_4():  # --remote-debugging-pipe reads commands on fd 3, writes replies on fd 4
            os.dup2(child_ends[0], 3)
            os.dup2(child_ends[1], 4)

        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir / 'profile'}", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=on_fds_3_and_4,
                close_fds=False,  # the parent's own descriptors are close-on-exec; 3 and 4 must survive
                start_new_session=True,
            )
        for fd in child_ends:
            os.close(fd)
        self._buffer = b""
        self._last_id = 0
        self.events: list[dict] = []
        try:
            self.command("Browser.getVersion")
        except BaseException:
            self.close()
            raise

    def command(self, method: str, params: dict | None = None, *, session: str | None = None) -> dict:
        """Send one command and wait (at most COMMAND_TIMEOUT) for its reply; events meanwhile are kept."""
        self._last_id += 1
        message = {"id": self._last_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._commands, data) :]
        except BrokenPipeError:
            pytest.fail(f"Chromium is gone before {method}: {self.log_tail()}", pytrace=False)
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while True:
            reply = self._next_message(deadline, method)
            if reply.get("id") == self._last_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            if "method" in reply:
                self.events.append(reply)

    def _next_message(self, deadline: float, waiting_for: str) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready = select.select([self._replies], [], [], max(left, 0))[0] if left > 0 else []
            if not ready:
                pytest.fail(f"Chromium did not answer {waiting_for} within {COMMAND_TIMEOUT:.0f} s", pytrace=False)
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                pytest.fail(f"Chromium closed its pipe during {waiting_for}: {self.log_tail()}", pytrace=False)
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""

    def close(self) -> None:
        """Ask Chromium to quit; kill its process group when it has not within 10 s."""
        try:
            os.write(self._commands, json.dumps({"id": self._last_id + 1, "method": "Browser.close"}).encode() + b"\0")
        except OSError:
            pass  # already gone
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        finally:
            os.close(self._commands)
            os.close(self._replies)


class Tab:
    """A fresh page of the browser, with what it logged, threw and requested since it last navigated."""

    def __init__(self, browser: Chromium):
        self.browser = browser
        self.target = browser.command("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = browser.command("Target.attachToTarget", {"targetId": self.target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", {**SCREEN, "deviceScaleFactor": 1, "mobile": False})
        self._first_event = len(browser.events)

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.command(method, params, session=self.session)

    def open(self, path: Path | str) -> None:
        """Load ``path`` (a file, or a ``file:`` URL) and wait until the new document has loaded."""
        url = path if isinstance(path, str) else Path(path).resolve().as_uri()
        self._first_event = len(self.browser.events)
        navigation = self.send("Page.navigate", {"url": url})
        assert "errorText" not in navigation, f"{url}: {navigation['errorText']}"
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while True:
            # Events arrive while commands are answered: a browser-wide one collects them safely.
            self.browser.command("Browser.getVersion")
            navigated = self.events("Page.frameNavigated")
            if any(event["frame"]["loaderId"] == navigation["loaderId"] for event in navigated):
                if self.evaluate("document.readyState") == "complete":
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"timed out loading {url}", pytrace=False)
            time.sleep(0.05)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page; a promise is awaited."""
        reply = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True, "timeout": COMMAND_TIMEOUT * 1000},
        )
        if "exceptionDetails" in reply:
            raise AssertionError(f"the test's own script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(self, condition: str, *, what: str) -> None:
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while not self.evaluate(f"Boolean({condition})"):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out {what}", pytrace=False)
            time.sleep(0.05)

    def events(self, *methods: str) -> list[dict]:
        return [
            event["params"]
            for event in self.browser.events[self._first_event :]
            if event.get("sessionId") == self.session and event["method"] in methods
        ]

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions, failed loads and any request that is not file: or data:."""
        found = []
        for params in self.events("Runtime.exceptionThrown"):
            details = params["exceptionDetails"]
            found.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        for params in self.events("Runtime.consoleAPICalled"):
            if params["type"] in ("error", "assert"):
                args = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"])
                found.append(f"console.{params['type']}: {args}")
        for params in self.events("Log.entryAdded"):
            entry = params["entry"]
            if entry["level"] == "error":
                found.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
        for params in self.events("Network.requestWillBeSent"):
            url = params["request"]["url"]
            if not url.startswith(LOCAL_SCHEMES):
                found.append(f"network request: {url}")
        for params in self.events("Network.loadingFailed"):
            found.append(f"failed to load: {params.get('errorText')} ({params.get('type')})")
        return found

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        params = {"format": "png"}
        if full_page:
            height = self.evaluate("document.documentElement.scrollHeight")
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": SCREEN["width"], "height": height, "scale": 1},
            )
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", params)["data"]))
        return path

    def close(self) -> None:
        self.browser.command("Target.closeTarget", {"targetId": self.target})


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Chromium(tmp_path_factory.mktemp("chromium"))
    yield chromium
    chromium.close()


@pytest.fixture
def tab(browser):
    page = Tab(browser)
    yield page
    page.close()


# Every <img> brought into view (they load lazily), awaited and decoded: its size, or why it failed.
DECODE_IMAGES = """(async () => {
  const settled = (img) => img.complete ? Promise.resolve() : new Promise((done) => {
    img.addEventListener("load", done, {once: true});
    img.addEventListener("error", done, {once: true});
    setTimeout(done, 10000);
  });
  const results = [];
  for (const img of document.images) {
    img.scrollIntoView({block: "center"});
    await settled(img);
    let error = null;
    try { await img.decode(); } catch (e) { error = String(e); }
    results.push({alt: img.alt, width: img.naturalWidth, height: img.naturalHeight, error});
  }
  window.scrollTo(0, 0);
  return results;
})()"""

# Where every src/href/action/... of the page points, resolved against the page: only its scheme.
LINK_SCHEMES = """[...document.querySelectorAll("[src],[href],[action],[formaction],[poster],[data]")].flatMap(
  (el) => ["src", "href", "action", "formaction", "poster", "data"].filter((a) => el.hasAttribute(a)).map(
    (a) => `${el.tagName.toLowerCase()} ${a} ${new URL(el.getAttribute(a), document.baseURI).protocol}`))"""


def assert_offline_page(tab: Tab, path: Path, *, min_images: int = 0) -> None:
    """``path`` loads and behaves offline: nothing fetched, no error, every image decoded, no payload run."""
    source = path.read_text(encoding="utf-8")
    assert not NETWORK_ATTRIBUTE.search(source), NETWORK_ATTRIBUTE.search(source).group(0)
    assert not NETWORK_CSS.search(source), NETWORK_CSS.search(source).group(0)
    tab.open(path)
    images = tab.evaluate(DECODE_IMAGES)
    assert len(images) >= min_images, images
    broken = [image for image in images if image["error"] or not (image["width"] > 0 and image["height"] > 0)]
    assert not broken, broken
    remote = [link for link in tab.evaluate(LINK_SCHEMES) if link.rsplit(" ", 1)[1] not in LOCAL_SCHEMES]
    assert not remote, remote
    assert tab.evaluate("typeof window.__pwned") == "undefined", "markup from the data ran as script"
    assert tab.problems() == []


def test_the_harness_sees_what_a_broken_page_does(tab, tmp_path):
    """A page that logs an error, throws, fetches from the network and shows a corrupt image is caught."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body>"
        '<img src="http://example.com/logo.png" alt="remote">'
        '<img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAA" alt="corrupt">'
        "<script>console.error('logged an error'); window.__pwned = 1;</script>"
        "<script>throw new Error('thrown on purpose')</script>"
        "</body></html>",
        encoding="utf-8",
    )
    tab.open(page)
    images = tab.evaluate(DECODE_IMAGES)
    assert [image["width"] for image in images] == [0, 0]
    assert all(image["error"] for image in images)
    assert tab.evaluate("typeof window.__pwned") == "number"
    problems = "\n".join(tab.problems())
    assert "console.error: logged an error" in problems
    assert "thrown on purpose" in problems
    assert "network request: http://example.com/logo.png" in problems
    assert NETWORK_ATTRIBUTE.search(page.read_text())

    # Under the reports' own policy a remote image is blocked before any request: the log says so.
    guarded = tmp_path / "guarded.html"
    guarded.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'
        '</head><body><img src="https://example.com/tracker.png" alt="blocked"></body></html>',
        encoding="utf-8",
    )
    tab.open(guarded)
    tab.evaluate(DECODE_IMAGES)
    assert any("Content Security Policy" in problem for problem in tab.problems()), tab.problems()


@pytest.fixture(scope="module")
def markup_model(tmp_path_factory) -> tuple[Path, Path]:
    """(model, its training CSV): a forest in a Pipeline whose ``color`` column is named COLUMN_NAME
    and ``noise`` LONG_COLUMN."""
    return model_with_a_markup_column(tmp_path_factory.mktemp("markup_model"))


def model_with_a_markup_column(work: Path) -> tuple[Path, Path]:
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = renamed(mixed_frame(200, seed=1))
    categories = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    preprocess = ColumnTransformer(
        [
            ("numbers", SimpleImputer(strategy="median"), ["age", "income", LONG_COLUMN]),
            ("categories", categories, [COLUMN_NAME, "city"]),
        ]
    )
    forest = RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0)
    model = Pipeline([("preprocess", preprocess), ("model", forest)])
    model.fit(train[["age", "income", COLUMN_NAME, "city", LONG_COLUMN]], train["label"])
    train.to_csv(work / "train.csv", index=False)
    joblib.dump(model, work / "model.joblib")
    return work / "model.joblib", work / "train.csv"


def renamed(frame):
    return frame.rename(columns={"color": COLUMN_NAME, "noise": LONG_COLUMN})


@pytest.fixture(scope="module")
def explain_run(tmp_path_factory, markup_model) -> Path:
    """``xai explain`` of 8 rows (plots for the first 5), markup in a column name, an id and two cells."""
    work = tmp_path_factory.mktemp("explain_in_browser")
    model, train = markup_model
    rows = renamed(mixed_frame(EXPLAINED_ROWS, seed=2))
    rows.insert(0, "name", [f"person-{i}" for i in range(len(rows))])
    rows.loc[1, ["name", "city", COLUMN_NAME]] = [SCRIPT_ID, SCRIPT_BREAKOUT_CELL, IMG_CELL]
    rows.to_csv(work / "rows.csv", index=False)
    out = work / "out"
    result = run_cli(
        [
            "explain",
            model,
            work / "rows.csv",
            "--id-col",
            "name",
            "--target",
            "label",
            "--background",
            train,
            "--max-plots",
            MAX_PLOTS,
            "--out",
            out,
        ]
    )
    assert result.code == 0, result.stderr
    return out


def test_explain_report_loads_offline_with_every_image_decoded_and_the_data_as_text(tab, explain_run, tmp_path):
    report = explain_run / "report.html"
    # The summary bar plus a force plot and a waterfall for each plotted row.
    assert_offline_page(tab, report, min_images=1 + 2 * MAX_PLOTS)
    text = tab.evaluate("document.body.innerText")
    for payload in PAYLOADS:
        assert payload in text, f"{payload!r} is not shown as text"
    tab.screenshot(tmp_path / "explain_report_top.png")
    tab.screenshot(tmp_path / "explain_report_full.png", full_page=True)


def test_force_plot_pages_draw_shaps_svg_offline(tab, explain_run, tmp_path):
    tab.open(explain_run / "report.html")
    links = tab.evaluate("[...document.querySelectorAll('a[href$=\".html\"]')].map((a) => a.href)")
    assert len(links) == MAX_PLOTS, links  # one interactive force plot per plotted row, linked from the report
    for number, link in enumerate(links):
        path = Path(url2pathname(urlparse(link).path))
        assert path.parent == (explain_run / "plots").resolve() and path.name.startswith("force_"), link
        assert_offline_page(tab, path)
        tab.wait_for(
            "document.querySelectorAll('#xai-force-plot svg text').length > 3"
            " && document.querySelectorAll('#xai-force-plot svg path').length > 3",
            what=f"shap's force plot to draw in {path.name}",
        )
        labels = tab.evaluate("[...document.querySelectorAll('#xai-force-plot svg text')].map((t) => t.textContent)")
        assert "base value" in labels and "f(x)" in labels, labels
        assert any(re.match(r"(age|income|city|noise) = ", label) for label in labels), labels
        box = tab.evaluate("JSON.stringify(document.querySelector('#xai-force-plot svg').getBoundingClientRect())")
        assert json.loads(box)["width"] > 500 and json.loads(box)["height"] > 50, box
        assert tab.evaluate("typeof window.__pwned") == "undefined"
        assert tab.problems() == []
        if number in (0, 1):
            tab.screenshot(tmp_path / f"force_row_{number}.png")
        if number == 1:
            assert SCRIPT_ID in tab.evaluate("document.querySelector('h1').innerText")


def test_explain_report_draws_shaps_force_plot_for_the_first_rows_and_tables_the_rest(tab, explain_run, tmp_path):
    """--max-plots 5 of 8 rows: five rows in full (shap's force plot drawn in the page, PNGs), all 8 in the table."""
    tab.open(explain_run / "report.html")
    tab.wait_for(
        "[...document.querySelectorAll('.xai-force')].every((d) => d.querySelectorAll('svg text').length > 3"
        " && d.querySelectorAll('svg path').length > 3)",
        what="shap's force plots to draw in report.html",
    )
    plotted = tab.evaluate(
        "[...document.querySelectorAll('#row-plots .row-plots')].map((b) => ({"
        "heading: b.querySelector('h3').innerText, forces: b.querySelectorAll('.xai-force svg').length,"
        "images: b.querySelectorAll('img').length}))"
    )
    assert [block["heading"].split(" · ")[0] for block in plotted] == [
        "person-0",
        SCRIPT_ID,
        "person-2",
        "person-3",
        "person-4",
    ], plotted
    assert all(block["forces"] >= 1 and block["images"] == 2 for block in plotted), plotted
    labels = tab.evaluate("[...document.querySelectorAll('.xai-force svg text')].map((t) => t.textContent)")
    assert "base value" in labels and "f(x)" in labels
    assert any(label.startswith(f"{COLUMN_NAME} = ") for label in labels), labels  # the name is text in the SVG
    box = json.loads(tab.evaluate("JSON.stringify(document.querySelector('.xai-force svg').getBoundingClientRect())"))
    assert box["width"] > 500 and box["height"] > 50, box
    ids = tab.evaluate("[...document.querySelectorAll('#top-features tbody tr')].map((r) => r.cells[1].innerText)")
    assert ids == ["person-0", SCRIPT_ID] + [f"person-{i}" for i in range(2, EXPLAINED_ROWS)], ids
    assert f"Plots of the first {MAX_PLOTS} of {EXPLAINED_ROWS} rows" in tab.evaluate("document.body.innerText")
    assert tab.evaluate("typeof window.__pwned") == "undefined"
    assert tab.problems() == []
    tab.evaluate("document.querySelector('#row-plots').scrollIntoView()")
    tab.screenshot(tmp_path / "explain_report_row_plots.png")
    assert_fits_the_window(tab)


# Elements wider than the window or than their own box: tables (in their scrolling wrapper), cards,
# lists. And metadata values that a layout broke mid-word: a one-word value taking several lines.
LAYOUT_PROBLEMS = """(() => {
  const wide = [];
  const width = document.documentElement.clientWidth;
  for (const el of document.querySelectorAll("main, section, .card, table, dl, ol.attrs, figure")) {
    const box = el.getBoundingClientRect();
    const limit = el.tagName === "TABLE" ? el.parentElement.clientWidth : el.clientWidth;
    if (box.right > width + 1 || el.scrollWidth > limit + 1) {
      wide.push(`${el.tagName.toLowerCase()}.${el.className}: ${el.scrollWidth} px in ${limit}`);
    }
  }
  const broken = [];
  for (const dd of document.querySelectorAll("dd")) {
    const text = dd.innerText.trim();
    const range = document.createRange();
    range.selectNodeContents(dd);
    const lines = new Set([...range.getClientRects()].map((rect) => Math.round(rect.top))).size;
    if (/^\\S{1,16}$/.test(text) && lines > 1) broken.push(text);
  }
  return {wide, broken, page: document.documentElement.scrollWidth, window: width};
})()"""


def assert_fits_the_window(tab: Tab) -> None:
    """Nothing on the page is wider than the window, and no short metadata value is broken over lines."""
    layout = tab.evaluate(LAYOUT_PROBLEMS)
    assert layout["page"] <= layout["window"], layout
    assert layout["wide"] == [], layout["wide"]
    assert layout["broken"] == [], layout["broken"]


def test_reports_fit_the_window_with_long_unbroken_feature_names(tab, explain_run):
    tab.open(explain_run / "report.html")
    assert LONG_COLUMN in tab.evaluate("document.body.innerText")
    assert_fits_the_window(tab)


def test_importance_report_loads_offline_with_every_image_decoded(tab, markup_model, tmp_path):
    # A file name can carry markup too: the report shows DATA's path.
    model, train = markup_model
    data = tmp_path / f"{IMG_CELL}.csv"
    shutil.copy(train, data)
    out = tmp_path / "out"
    result = run_cli(["importance", model, data, "--target", "label", "--out", out])
    assert result.code == 0, result.stderr
    assert_offline_page(tab, out / "report.html", min_images=3)  # permutation, built-in, mean |SHAP|
    text = tab.evaluate("document.body.innerText")
    assert IMG_CELL in text and COLUMN_NAME in text
    assert_fits_the_window(tab)
    tab.screenshot(tmp_path / "importance_report_top.png")
    tab.screenshot(tmp_path / "importance_report_full.png", full_page=True)


def test_audit_report_of_a_drifted_run_shows_failed_checks_and_drift_bars(tab, markup_model, tmp_path):
    """The nightly job's bad night: a second run on shifted data fails, and the page says why."""
    import pandas as pd

    model, train = markup_model
    data = tmp_path / f"{IMG_CELL}.csv"  # the report shows DATA's path
    shutil.copy(train, data)
    drifted = pd.read_csv(train)
    drifted["age"] = drifted["age"] + 25
    drifted["city"] = "Oslo"
    drifted[LONG_COLUMN] = drifted[LONG_COLUMN] * 4 + 3
    drifted.to_csv(tmp_path / "drifted.csv", index=False)
    history = tmp_path / "audits"
    first = run_cli(["audit", model, data, "--target", "label", "--history", history])
    assert first.code == 0, first.stderr
    second = run_cli(["audit", model, tmp_path / "drifted.csv", "--target", "label", "--history", history])
    assert second.code == 1, second.stderr  # fail: the cron job must notice
    reports = sorted(history.glob("*/report.html"))
    assert len(reports) == 2, reports

    assert_offline_page(tab, reports[0], min_images=1)
    assert IMG_CELL in tab.evaluate("document.body.innerText")
    assert_offline_page(tab, reports[-1], min_images=2)  # importance against the baseline, PSI per feature
    assert "FAILED" in tab.evaluate("document.querySelector('h1').innerText")
    failed = tab.evaluate(
        "[...document.querySelectorAll('#checks tbody tr')].filter((r) => r.innerText.includes('FAIL')).length"
    )
    assert failed >= 1
    drift = tab.evaluate("[...document.querySelectorAll('#drift img')].map((i) => [i.alt, i.naturalWidth])")
    assert drift and all(width > 0 for _, width in drift), drift
    drifted_rows = tab.evaluate(
        "[...document.querySelectorAll('#drift tbody tr')].filter("
        "(r) => r.innerText.includes('FAIL')).map((r) => r.cells[0].innerText)"
    )
    assert {"age", "city", LONG_COLUMN} <= set(drifted_rows), drifted_rows
    assert COLUMN_NAME in tab.evaluate("document.body.innerText")
    assert_fits_the_window(tab)
    tab.screenshot(tmp_path / "audit_report_top.png")
    tab.screenshot(tmp_path / "audit_report_full.png", full_page=True)
