"""The explorer page, alignment.html: its data against alignment.json and NumPy, and the
page itself in a real headless browser (Debian's chromium through Selenium and
chromium-driver): it loads with no console errors, a clicked token shows both models'
top-10 with the right numbers, sorting and filtering change the list, and a
screenshot is written."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pretty_jax.alignment import explorer, summary
from pretty_jax.alignment.runner import (
    AlignmentConfig,
    ModelPair,
    PromptExample,
    run_alignment,
)
from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.engine.batching import left_pad
from pretty_jax.engine.generator import DecodeConfig
from pretty_jax.models import forward

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _prompt(sentence: str) -> str:
    """A prompt whose end is not its source sentence (as a task template makes)."""
    return f"Translate into German.\nEnglish: {sentence}\nGerman:"


@pytest.fixture(scope="module")
def page(jax_checkpoint, jax_sft_stand_in, tmp_path_factory):
    """(alignment.json as read back, the page's path, the models, the tokenizer) of an
    alignment run of the tiny LLaMA against its perturbed copy on six prompts."""
    foundation_dir, sft_dir = jax_checkpoint("llama"), jax_sft_stand_in("llama")
    foundation, sft = loading.load_model(foundation_dir, "float32"), loading.load_model(sft_dir, "float32")
    tokenizer = load_tokenizer(foundation_dir)
    examples = [PromptExample(f"s{i}", _prompt(sentence), source=sentence) for i, sentence in enumerate(SENTENCES[:6])]
    config = AlignmentConfig(prior_tokens=(0, 1), decode=DecodeConfig(max_new_tokens=10), batch_size=4, chunk=4)
    report = run_alignment(ModelPair(foundation, sft, tokenizer, ("lm", "sft")), examples, config)
    path = tmp_path_factory.mktemp("explorer") / explorer.PAGE_FILE
    path.write_text(explorer.page_html(report[summary.EXPLORER_DATA], "tiny pair"), encoding="utf-8")
    return json.loads(summary.report_json(report)), path, (foundation, sft), tokenizer, report[summary.EXPLORER_DATA]


def test_page_data_matches_alignment_json_and_decodes_each_token_once(page):
    report, _, _, tokenizer, data = page
    assert data["ks"] == ["0", "1"] and [e["id"] for e in data["examples"]] == [f"s{i}" for i in range(6)]
    for k, entry in report["by_prior_tokens"].items():
        for example, shown in zip(entry["examples"], data["examples"]):
            run, steps = shown["runs"][k], example["steps"]
            assert run["trajectory"] == example["trajectory"] and run["prior"] == example["prior"]
            assert run["rank"] == steps["sft_rank_in_lm"]
            np.testing.assert_allclose(run["kl"], steps["kl_sft_lm"], atol=1e-4)
            assert np.shape(run["lm_top"]) == (len(example["trajectory"]), 10) or not example["trajectory"]
            if example["trajectory"]:
                np.testing.assert_allclose(np.exp(np.asarray(run["lm_lp"])[:, 0]), steps["p_lm_own"], atol=1e-3)
                np.testing.assert_allclose(np.exp(np.asarray(run["sft_lp"])[:, 0]), steps["p_sft_own"], atol=1e-3)
    used = {t for e in data["examples"] for run in e["runs"].values()
            for t in [*run["prior"], *run["trajectory"], *np.ravel(run["lm_top"]), *np.ravel(run["sft_top"])]}
    assert set(map(int, data["tokens"])) == used
    assert all(data["tokens"][str(t)] == explorer.token_text(tokenizer, t) for t in used)


def test_token_text_keeps_the_word_initial_space(page):
    tokenizer = page[3]
    word = tokenizer("hello", add_special_tokens=False).input_ids[0]
    assert explorer.token_text(tokenizer, word).startswith(" ")


def test_page_escapes_markup_in_token_texts():
    data = {"foundation": "a", "sft": "b", "trajectory": "foundation", "ks": ["0"],
            "tokens": {"1": "</script><b>x</b>"}, "examples": []}
    html = explorer.page_html(data, "<t>")
    assert "</script><b>" not in html and "<title>&lt;t&gt;</title>" in html
    assert explorer.decode_data(html) == data
    assert explorer.page_html(data, "<t>") == html  # the same data, the same bytes


@pytest.fixture(scope="module")
def browser(page):
    """Headless chromium on the page, its console log kept."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.get(page[1].as_uri())
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true")
    yield driver
    driver.quit()


def _listed_ids(driver) -> list[str]:
    return [item.text.splitlines()[0] for item in driver.find_elements("css selector", "#list li")]


def test_page_loads_without_console_errors(browser, page):
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    assert _listed_ids(browser) == [f"s{i}" for i in range(6)]
    assert browser.find_element("css selector", "#main h2").text == "s0"
    assert len(browser.find_elements("css selector", ".run")) == 2


def _expected_top(models, tokenizer, prompt: str, example: dict, step: int):
    """Both models' top-10 (token text, probability) at `step`, from a plain forward and NumPy."""
    sequence = tokenizer(prompt).input_ids + example["prior"] + example["trajectory"]
    tokens, mask, positions = left_pad([sequence], 0)
    column = len(sequence) - len(example["trajectory"]) - 1 + step
    tops = []
    for model in models:
        logits = np.asarray(forward(model.graphdef, model.params, tokens, positions, mask)[0])[0, column].astype(np.float64)
        probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        order = np.argsort(-probabilities, kind="stable")[:10]
        tops.append([(json.dumps(explorer.token_text(tokenizer, int(i)), ensure_ascii=False)[1:-1], probabilities[i]) for i in order])
    return tops


def test_clicking_a_token_shows_both_top10_with_the_numbers_of_alignment_json(browser, page):
    report, _, models, tokenizer, _ = page
    k, step = "1", 2
    example = report["by_prior_tokens"][k]["examples"][0]
    assert len(example["trajectory"]) > step
    browser.find_element("css selector", f'.tok[data-k="{k}"][data-step="{step}"]').click()
    panel = browser.find_element("css selector", "#panel")
    cell = lambda name: panel.find_element("css selector", f"td.{name}").text  # noqa: E731
    steps = example["steps"]
    assert int(cell("rank")) == steps["sft_rank_in_lm"][step] + 1
    assert float(cell("kl")) == pytest.approx(steps["kl_sft_lm"][step], abs=2e-4)
    assert float(cell("js")) == pytest.approx(steps["js"][step], abs=2e-4)
    assert float(cell("p-lm-of-sft")) == pytest.approx(steps["p_lm_of_sft"][step], abs=2e-4)
    expected = _expected_top(models, tokenizer, _prompt(SENTENCES[0]), example, step)
    for table, top in zip(("lm-top", "sft-top"), expected):
        rows = panel.find_elements("css selector", f"table.{table} tr")[1:]
        text = lambda row, name: row.find_element("css selector", f"td.{name}").get_attribute("textContent")  # noqa: E731
        shown = [(text(row, "t"), float(text(row, "p"))) for row in rows]
        assert [token for token, _ in shown] == [token for token, _ in top]
        np.testing.assert_allclose([p for _, p in shown], [p for _, p in top], atol=2e-4)
    assert float(panel.find_elements("css selector", "table.lm-top td.p")[0].text) == pytest.approx(steps["p_lm_own"][step], abs=2e-4)
    assert float(panel.find_elements("css selector", "table.sft-top td.p")[0].text) == pytest.approx(steps["p_sft_own"][step], abs=2e-4)


def test_sorting_and_filtering_change_the_list(browser, page):
    from selenium.webdriver.support.ui import Select

    report = page[0]
    Select(browser.find_element("id", "sort-k")).select_by_value("0")
    Select(browser.find_element("id", "sort")).select_by_value("kl")
    examples = report["by_prior_tokens"]["0"]["examples"]
    by_kl = sorted(examples, key=lambda e: -np.mean(e["steps"]["kl_sft_lm"]) if e["trajectory"] else 1.0)
    expected = [e["id"] for e in by_kl]
    assert expected != [f"s{i}" for i in range(6)]  # the sort has something to change
    assert _listed_ids(browser) == expected
    data = page[4]
    needle = "berlin"
    outputs = lambda e: "".join(data["tokens"][str(t)] for run in e["runs"].values()  # noqa: E731
                                for t in run["prior"] + run["trajectory"])
    matching = [e["id"] for e in data["examples"] if needle in (e["id"] + e["prompt"] + outputs(e)).lower()]
    assert 0 < len(matching) < 6
    search = browser.find_element("id", "filter")
    search.send_keys(needle)
    assert _listed_ids(browser) == [i for i in expected if i in matching]
    assert browser.find_element("css selector", "#main h2").text in matching  # the detail follows the filter
    search.clear()
    search.send_keys(" \b")
    assert _listed_ids(browser) == expected
    search.send_keys("no example says this")
    assert _listed_ids(browser) == [] and browser.find_elements("css selector", "#main h2") == []
    assert "No example matches" in browser.find_element("id", "main").text
    search.clear()
    search.send_keys(" \b")
    assert _listed_ids(browser) == expected and browser.find_element("css selector", "#main h2").text == expected[0]


def test_the_list_shows_each_source_sentence(browser, page):
    snippets = [item.text for item in browser.find_elements("css selector", "#list li .snippet")]
    by_id = dict(zip(_listed_ids(browser), snippets))
    for i, sentence in enumerate(SENTENCES[:6]):
        flat = " ".join(sentence.split())
        assert by_id[f"s{i}"] == (flat if len(flat) <= 80 else flat[:80] + "…")
    assert page[4]["examples"][0]["source"] == SENTENCES[0] and page[4]["examples"][0]["prompt"] == _prompt(SENTENCES[0])


@pytest.mark.slow
def test_kl_colouring_and_a_screenshot(browser, page, tmp_path):
    browser.find_element("css selector", "input[name=colour][value=kl]").click()
    token = browser.find_element("css selector", ".tok")
    assert token.get_attribute("style").startswith("background") and "shifted" not in token.get_attribute("class")
    browser.find_element("css selector", "input[name=colour][value=class]").click()
    classes = {browser.find_element("css selector", ".tok").get_attribute("class").split()[-1]}
    assert classes <= {"unshifted", "marginal", "shifted"}
    shot = tmp_path / "alignment.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_prompts_file_source_is_what_the_list_shows(tmp_path):
    from pretty_jax.alignment.runner import read_prompts_file
    from pretty_jax.core.errors import UserError

    path = tmp_path / "prompts.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": "Translate.\nEnglish: Hello\nGerman:", "source": "Hello"}) + "\n"
                    + json.dumps({"id": "b", "prompt": "Bye"}) + "\n", encoding="utf-8")
    assert [(e.id, e.source) for e in read_prompts_file(path)] == [("a", "Hello"), ("b", None)]
    path.write_text(json.dumps({"prompt": "x", "source": 3}) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"prompts.jsonl:1: field 'source' must be a string"):
        read_prompts_file(path)
