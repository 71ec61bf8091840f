"""attend report's page in a real browser (headless Debian chromium over the DevTools protocol).

Small models are trained here (seconds each); the reports are opened from files with the network
off, and each test checks what a user would look at: no script errors, a chart per metric, a
heatmap for every sample, hover and click behaviour, a Transformer's head grid, bad inputs.
"""

import json
import os
import re
import shutil
import sys
import time

import pytest

from cdp import Browser

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "pyhelpers"))
from small_models import attend, train_small_models  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return train_small_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def browser():
    with Browser() as b:
        yield b


def report(models, out, *args):
    r = attend("report", "--data", models / "rnn" / "test.tsv", "--out", out, *args)
    return r, json.loads(re.search(r'id="report-data">(.*?)</script>', open(out).read(), re.S).group(1))


def open_clean(browser, path):
    """Opens the page; it must load with no script error and ask for nothing but itself."""
    browser.open(path)
    assert browser.errors() == []
    assert browser.eval("document.body.dataset.ready") == "true"
    others = [u for u in browser.requests() if u != "file://" + os.path.abspath(path)]
    assert others == [], f"the page fetched {others}"


def test_every_part_of_a_model_page(models, browser, tmp_path):
    page = tmp_path / "rnn.html"
    _, data = report(models, page, "--model", models / "rnn", "--samples", "12", "--test", models / "rnn" / "test.tsv")
    open_clean(browser, page)
    charts = browser.eval("[...document.querySelectorAll('svg.chart')].map(c => c.dataset.metric)")
    assert charts == ["train_loss", "dev_exact_match", "dev_error_rate", "lr", "tokens_per_second"]
    assert browser.eval("document.querySelectorAll('svg.chart path.series').length") == 5
    assert browser.eval("document.querySelectorAll('#samples li').length") == 12
    card = browser.eval("document.querySelector('.card').innerText")
    for expected in ("parameters", "best dev", "trained", "command", "test exact match"):
        assert expected in card
    # Every sample has its heatmap: one cell per (output step, source token).
    for k, sample in enumerate(data["models"][0]["samples"]):
        browser.click(f"#samples li[data-index='{k}']")
        assert browser.eval("document.getElementById('heatmap').dataset.sample") == str(k)
        cells = browser.eval("document.querySelectorAll('#heatmap rect.cell').length")
        assert cells == len(sample["tgt"]) * len(sample["src"]), k


def test_hover_highlights_what_a_token_attends_to(models, browser, tmp_path):
    page = tmp_path / "rnn.html"
    _, data = report(models, page, "--model", models / "rnn", "--samples", "3")
    open_clean(browser, page)
    browser.hover("#heatmap text.tgt-label[data-t='2']")
    assert browser.eval("document.querySelector('#heatmap text.tgt-label[data-t=\"2\"]').classList.contains('active')")
    weights = browser.eval("[...document.querySelectorAll('#heatmap rect.cell[data-t=\"2\"]')]"
                           ".map(r => r.querySelector('title').textContent.split(': ').pop()).map(Number)")
    top = weights.index(max(weights))
    assert browser.eval(f"document.querySelector('#heatmap text.src-label[data-s=\"{top}\"]').classList.contains('hl')")
    assert browser.eval("document.querySelectorAll('#heatmap rect.cell.hl').length") == len(weights)
    browser.hover(f"#heatmap text.src-label[data-s='{top}']")
    assert browser.eval("document.querySelectorAll('#heatmap text.tgt-label.hl').length") >= 1
    assert browser.eval("document.querySelectorAll('#heatmap rect.cell.hl').length") == 0


def test_the_x_axis_switches_to_wall_time(models, browser, tmp_path):
    page = tmp_path / "rnn.html"
    report(models, page, "--model", models / "rnn", "--samples", "2")
    open_clean(browser, page)
    browser.click("button[data-x='time']")
    labels = browser.eval("[...document.querySelectorAll('svg.chart text')].map(t => t.textContent)")
    assert "minutes" in labels and "updates" not in labels


def test_a_transformer_has_a_grid_of_layers_and_heads(models, browser, tmp_path):
    page = tmp_path / "transformer.html"
    _, data = report(models, page, "--model", models / "transformer", "--samples", "4")
    open_clean(browser, page)
    maps = data["models"][0]["maps"]
    assert len(maps) == 2 * 4
    assert browser.eval("document.querySelectorAll('#heads canvas.head').length") == len(maps) + 1  # and the mean
    browser.click("#heads canvas.head[data-map='5']")
    assert browser.eval("document.getElementById('map-name').textContent") == maps[5]["name"]
    assert browser.eval("document.getElementById('heatmap').dataset.map") == "5"
    browser.click("#samples li[data-index='2']")  # another sample keeps the chosen head
    assert browser.eval("document.getElementById('heatmap').dataset.map") == "5"


def test_two_models_on_one_page(models, browser, tmp_path):
    page = tmp_path / "both.html"
    report(models, page, "--model", models / "rnn", "--model", models / "transformer", "--samples", "5")
    open_clean(browser, page)
    assert browser.eval("document.querySelectorAll('.card').length") == 2
    assert browser.eval("document.querySelectorAll('svg.chart[data-metric=\"train_loss\"] path.series').length") == 2
    assert browser.eval("document.querySelectorAll('#heads').length") == 0
    browser.eval("(() => { const s = document.getElementById('model-select'); s.value = '1';"
                 " s.dispatchEvent(new Event('change')); })()")
    assert browser.eval("document.querySelectorAll('#heads canvas.head').length") == 9


def test_bad_inputs_are_named_and_the_rest_is_shown(models, browser, tmp_path):
    no_metrics = tmp_path / "no-metrics"
    shutil.copytree(models / "rnn", no_metrics)
    (no_metrics / "metrics.jsonl").unlink()
    data = tmp_path / "data.tsv"
    data.write_bytes(b"march 3, 1999\t1999-03-03\n"
                     b"bad \xff utf-8\t2000-01-01\n"
                     b"two\ttabs\there\n"
                     b"\n"
                     b"12/25/2001\n")
    page = tmp_path / "bad.html"
    r = attend("report", "--model", no_metrics, "--data", data, "--samples", "50", "--out", page)
    for expected in (f"{data}:2: invalid UTF-8", f"{data}:3: more than one tab", f"{no_metrics}: no metrics.jsonl",
                     f"--samples 50, but {data} has only 2 usable inputs"):
        assert expected in r.stderr, r.stderr
    open_clean(browser, page)
    warnings = browser.eval("document.getElementById('warnings').innerText")
    assert "invalid UTF-8" in warnings and "no metrics.jsonl" in warnings
    assert browser.eval("document.querySelectorAll('#samples li').length") == 2
    assert browser.eval("document.querySelector('#samples li[data-index=\"1\"]').innerText").startswith("?")
    assert "No training metrics" in browser.eval("document.getElementById('charts').innerText")


def test_a_model_that_cannot_be_loaded_still_shows_its_training(models, browser, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(models / "rnn", broken)
    with open(broken / "model.safetensors", "r+b") as f:
        f.seek(200)
        f.write(b"\0" * 64)
    page = tmp_path / "broken.html"
    r = attend("report", "--model", broken, "--data", models / "rnn" / "test.tsv", "--out", page)
    assert "cannot load the model" in r.stderr and "model.safetensors" in r.stderr
    open_clean(browser, page)
    assert "cannot load the model" in browser.eval("document.querySelector('.card').innerText")
    assert browser.eval("document.querySelectorAll('svg.chart').length") >= 3


def test_a_long_run_is_thinned_to_what_a_chart_can_show(models, browser, tmp_path):
    many = tmp_path / "many"
    shutil.copytree(models / "rnn", many)
    record = json.loads(open(many / "metrics.jsonl").readline())
    with open(many / "metrics.jsonl", "w") as f:
        for i in range(1, 10001):
            f.write(json.dumps({**record, "step": i, "elapsed_seconds": i / 10, "best": i == 7777}) + "\n")
    page = tmp_path / "many.html"
    r = attend("report", "--model", many, "--data", models / "rnn" / "test.tsv", "--samples", "2", "--out", page)
    assert "10000 evaluations; the charts show every 5th, each best one and the last (2002)" in r.stderr, r.stderr
    open_clean(browser, page)
    assert browser.eval("document.querySelectorAll('svg.chart[data-metric=\"train_loss\"] circle').length") == 2002
    assert browser.eval("document.querySelectorAll('svg.chart[data-metric=\"train_loss\"] circle.best').length") == 1


def test_text_in_the_data_cannot_become_markup(models, browser, tmp_path):
    data = tmp_path / "hostile.tsv"
    hostile = "</script><script>window.pwned = 1</script><!-- <b>x</b>"
    data.write_text(f"{hostile}\t2001-01-01\n")
    page = tmp_path / "hostile.html"
    attend("report", "--model", models / "rnn", "--data", data, "--out", page, "--title", "<i>t</i></title>")
    open_clean(browser, page)
    assert browser.eval("window.pwned === undefined")
    assert browser.eval("document.querySelectorAll('#samples b, #samples script').length") == 0
    assert hostile in browser.eval("document.querySelector('#samples li').textContent")
    assert browser.eval("document.title") == "<i>t</i></title>"


def test_a_bad_command_line_is_an_error(models, tmp_path):
    r = attend("report", "--model", tmp_path / "missing", "--data", models / "rnn" / "test.tsv", check=False)
    assert r.returncode == 2 and "missing" in r.stderr
    r = attend("report", "--model", models / "rnn", "--data", models / "rnn" / "test.tsv", "--samples", "0",
               check=False)
    assert r.returncode == 2 and "--samples" in r.stderr
    r = attend("report", "--model", models / "rnn", "--data", models / "rnn" / "test.tsv",
               "--out", tmp_path / "no-such-dir" / "r.html", check=False)
    assert r.returncode == 1 and "no-such-dir" in r.stderr
    weights = models / "rnn" / "model.safetensors"  # a slip: --out names the model's weights
    before = weights.read_bytes()
    r = attend("report", "--model", models / "rnn", "--data", models / "rnn" / "test.tsv", "--out", weights,
               check=False)
    assert r.returncode == 2 and "not a page attend report wrote" in r.stderr
    assert weights.read_bytes() == before
    page = tmp_path / "again.html"  # a page it wrote is replaced
    for _ in range(2):
        attend("report", "--model", models / "rnn", "--data", models / "rnn" / "test.tsv", "--out", page)


def test_two_hundred_samples_of_a_six_layer_eight_head_transformer(models, browser, tmp_path):
    big = tmp_path / "big"
    attend("train", "--task", "dates", "--dates-train", "500", "--model", "transformer", "--dim", "64", "--heads", "8",
           "--ffn", "64", "--layers", "6", "--max-steps", "2", "--eval-every", "1", "--out", big)
    page = tmp_path / "big.html"
    report(models, page, "--model", big, "--samples", "200")
    t0 = time.monotonic()
    open_clean(browser, page)
    seconds = time.monotonic() - t0
    size = os.path.getsize(page)
    print(f"\n200 samples, 6 x 8 heads: {size / 1e6:.1f} MB, loaded and drawn in {seconds:.2f} s")
    assert browser.eval("document.querySelectorAll('#samples li').length") == 200
    assert browser.eval("document.querySelectorAll('#heads canvas.head').length") == 49
    t0 = time.monotonic()
    browser.click("#samples li[data-index='199']")
    browser.click("#heads canvas.head[data-map='47']")
    assert browser.eval("document.getElementById('map-name').textContent") == "layer 6 head 8"
    assert time.monotonic() - t0 < 5
    assert seconds < 20
