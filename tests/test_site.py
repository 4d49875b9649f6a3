"`make site` on a small executed run: every page opened in headless Chromium shows its title, a figure, no error."
import base64, io, json, shutil
from pathlib import Path

import nbformat
import pytest
from phi1_nb.report import report_figures, to_html
from phi1_nb.site import build_site, check_site, chromium, external_refs, probe_page

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None,
                                reason="no chromium: .ci/run installs it (apt-get install chromium)")


def _png() -> str:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(3, 2)); fig.subplots().plot([0, 1, 4]); buf = io.BytesIO(); fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def executed(title:str, figure:bool=True, error:bool=False, noise:bool=False):
    "A notebook as papermill leaves it: an H1 title, a code cell with a stream and (optionally) a figure or a traceback."
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {title}\n> the {title} stage"),
                                         nbformat.v4.new_code_cell("print('counts'); plot()")])
    outs = [nbformat.v4.new_output("stream", name="stdout", text="counts: 3 in, 2 out\n")]
    if figure: outs.append(nbformat.v4.new_output("display_data", {"image/png": _png(), "text/plain": "<Figure>"}))
    if noise: outs += [nbformat.v4.new_output("stream", name="stderr", text="Loading weights: 100%|#####| 3/3\n"),
                       nbformat.v4.new_output("stream", name="stdout", text="x.py:3: FutureWarning: old\n"),
                       nbformat.v4.new_output("stream", name="stdout", text="[2026-12-07 02:59:35,193] [WARNING] "
                                              "[real_accelerator.py:213:get_accelerator] Setting accelerator to CPU.\n")]
    if error: outs.append(nbformat.v4.new_output("error", ename="ValueError", evalue="boom",
                                                 traceback=["Traceback (most recent call last)", "ValueError: boom"]))
    nb.cells[1].outputs = outs
    return nb


@pytest.fixture
def run(tmp_path):
    "A small executed run: two good stage pages, one without a figure, one with a traceback, and a report."
    rd = tmp_path/"tiny"; (rd/"notebooks").mkdir(parents=True)
    pages = [("corpus", "corpus", {}), ("filter", "filter", {}), ("dedup", "dedup", dict(figure=False)), ("pretrain", "train", dict(error=True)),
             ("finetune", "finetune", dict(noise=True))]
    for i, (stage, title, kw) in enumerate(pages):
        nbformat.write(executed(title, **kw), rd/"notebooks"/f"{i:02d}_{stage}.ipynb")
    r = dict(run_dir=str(rd), stages=[{"stage": "corpus", "records_in": 3, "records_out": 2}], synth=None, decontaminate=None,
             pretrain=dict(train=[(1, 8.), (10, 6.)], eval=[(10, 6.4)]), filter=dict(precision=.8, confusion=[[5, 1], [2, 9]]),
             eval=dict(models={"finetune": {"pass@1": .2, "pass@1_ci95": [.05, .4]}}))
    (rd/"report").mkdir(); (rd/"report"/"report.html").write_text(to_html(r, report_figures(r, rd, rd/"report")))
    return rd


def test_site_pages_in_a_browser(run, tmp_path):
    site = build_site(run, tmp_path/"_site")
    pages = json.loads((site/"phi1_pages.json").read_text())
    assert [p["title"] for p in pages] == ["phi1_nb", "corpus", "filter", "dedup", "train", "finetune", "Run report"]
    problems = check_site(site, run, screenshots=1)   # the network blocked; "shingle" typed into the index's search box
    assert problems == {"index.html": [], "00_corpus.html": [], "01_filter.html": [], "02_dedup.html": ["no figure"],
                        "03_pretrain.html": ["error output: 'Traceback (most recent call last)'", "1 stderr block"],
                        "04_finetune.html": ["1 stderr block", "2 warnings"], "report.html": []}, problems
    assert [p.name for p in (run/"site_screenshots").glob("*.png")] == ["index.png"]
    assert (run/"site_screenshots"/"index.png").stat().st_size > 10_000
    html = (site/"01_filter.html").read_text()
    assert "00_corpus.html" in html and "report.html" in html and "<img" in (site/"report.html").read_text()  # sidebar, figures
    assert (site/"search"/"search_index.js").exists() or (site/"search"/"search_index.json").exists()


def test_no_run_is_a_clear_error(tmp_path):
    import subprocess, sys
    r = subprocess.run([sys.executable, str(Path(__file__).parent.parent/"scripts"/"make_site.py"), "--run", str(tmp_path/"none"),
                        "--out", str(tmp_path/"_site")], capture_output=True, text=True)
    assert r.returncode == 2 and "run the pipeline first" in r.stderr and not (tmp_path/"_site").exists()
    assert chromium()


def test_offline_search_and_nothing_from_outside(run, tmp_path):
    "Search from file:// with no network finds a word of the index page; no page loads anything from another host."
    site = build_site(run, tmp_path/"_site")
    assert probe_page(site, "index.html", "shingle")["hits"] >= 1
    assert probe_page(site, "index.html", "zqxjkvw")["hits"] == 0       # the probe can see an empty result
    for page in site.glob("*.html"): assert external_refs(page.read_text()) == [], page.name
    assert external_refs('<link href="https://fonts.googleapis.com/css"><a href="https://arxiv.org">paper</a>') == \
        ["https://fonts.googleapis.com/css"]


def test_a_wide_table_is_caught(run, tmp_path):
    site = build_site(run, tmp_path/"_site")
    wide = "<table><tr>" + "".join(f"<td style='white-space:nowrap'>{'x' * 60}{i}</td>" for i in range(12)) + "</tr></table>"
    page = site/"00_corpus.html"; page.write_text(page.read_text().replace("</article>", f"{wide}</article>", 1))
    assert probe_page(site, "00_corpus.html")["tables"], "a row of 720 characters that may not wrap cannot fit 1280 px"


def test_the_report_reads(tmp_path):
    "The issue's report: no JSON literal, no 17-digit number, the run's relative path, both clocks named, pass@1 said so."
    import html as H, re
    from phi1_nb.report import PAPER
    rd = tmp_path/"abs"/"runs"/"tiny"
    r = dict(run_dir=str(rd), stages=[{"stage": "filter", "records_in": 3, "records_out": 2, "seconds": 30.512345}],
             pipeline={"stages": [{"stage": "filter", "seconds": 108.04}]}, synth=None, filter=None, pretrain=None,
             decontaminate=[{"tau": 0.95, "pruned": 3}],
             eval=dict(models={"finetune": {"n_samples": 1, "pass@1": 0.06, "pass@1_ci95": [0.04935675430588606, 0.07343598040865688]}}),
             ablation_results=dict(arms={"raw": {"loss_mean": 2.0123456, "loss_ci": [1.91234567, 2.1098765]}},
                                   pairs=[{"a": "raw", "b": "filtered", "diff": 0.0512345}], comparison=[{"a": "raw", "diff": 0.0512345}]))
    page = to_html(r, {})
    text = H.unescape(re.sub(r"<style>.*?</style>|<[^>]+>", " ", page, flags=re.S))
    assert not re.search(r'[{\[]\s*"', text) and '{"' not in text, "a JSON literal on the page"
    assert not re.search(r"\d\.\d{5,}", text), re.findall(r"\d\.\d{5,}", text)
    assert "0.0494 to 0.0734" in text and "2.01" in text and "1.91 to 2.11" in text
    assert str(tmp_path) not in page and "runs/tiny" in text
    assert "stage function (s)" in text and "notebook (s)" in text and "108" in text and "30.5" in text
    assert "pass@1 only" in text
    assert "tau 0.95: " + PAPER["decontaminate"]["0.95"] in text
    assert text.count("Comparison") == 0, "the Comparison table repeats Pairs"


def test_a_ten_column_markdown_table_fits(run, tmp_path):
    "The filter page's bake-off table (10 columns of `0.819 [0.745, 0.876]`) ran 285 px past the article at 1280 px."
    nb = nbformat.read(run/"notebooks"/"01_filter.ipynb", as_version=4)
    head = ["classifier", "F1", "balanced accuracy", "ROC AUC", "AP", "F1 gain over majority", "AUC gain", "fit s",
            "CPU-h per 1M files", "agreement"]
    rows = [f"| {n} | " + " | ".join("0.819 [0.745, 0.876]" for _ in head[1:]) + " |" for n in ("majority", "rf (hashing)")]
    table = "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + rows)
    nb.cells.append(nbformat.v4.new_markdown_cell(f"The bake-off:\n\n{table}\n"))
    nbformat.write(nb, run/"notebooks"/"01_filter.ipynb")
    site = build_site(run, tmp_path/"_site")
    assert "<table" in (site/"01_filter.html").read_text()
    assert probe_page(site, "01_filter.html")["tables"] == []


def test_outputs_read_at_3_digits(run, tmp_path):
    """Today's raw outputs (a dict printed as a literal, the Trainer's 6-decimal loss table, NaN) fail the check; the
    same values shown in a pipeline kernel (`execute_stage` starts it with `report.kernel_display`) pass it."""
    from phi1_nb.pipeline import execute_stage
    src = ['{"counts": {"in": 1221, "out": 1183}, "precision": 0.8478260869565217}',
           'from IPython.display import HTML, display\n'
           'display(HTML("<table><tr><th>Step</th><th>Training Loss</th></tr><tr><td>6</td><td>5.494605</td></tr></table>"))',
           'import pandas as pd\npd.DataFrame({"rate": [0.138929, float("nan")], "drops": [{"too_short": 16}, {}]})',
           '0.9428571428571428']
    nb = executed("dedup", figure=True)
    nb.cells[1].outputs += [nbformat.v4.new_output("stream", name="stdout", text="held-out: {'n': 6, 'precision': 0.6449}\n"),
                            nbformat.v4.new_output("display_data", {"text/html": "<table><tr><td>5.494605</td><td>NaN</td></tr></table>"})]
    nbformat.write(nb, run/"notebooks"/"02_dedup.ipynb")
    raw = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# pretrain")] + [nbformat.v4.new_code_cell(s) for s in src],
                                   metadata={"kernelspec": {"name": "python3", "display_name": "python3", "language": "python"}})
    nbformat.write(raw, tmp_path/"in.ipynb")
    execute_stage(tmp_path/"in.ipynb", run/"notebooks"/"03_pretrain.ipynb", {}, tmp_path)
    out = nbformat.read(run/"notebooks"/"03_pretrain.ipynb", 4)
    assert "5.49" in json.dumps(out.cells[2].outputs) and "0.139" in json.dumps(out.cells[3].outputs)   # shown, shorter
    site = build_site(run, tmp_path/"_site")
    problems = check_site(site, pages=["02_dedup.html", "03_pretrain.html"], query=None)
    assert problems == {"02_dedup.html": ["2 long numbers: 0.6449, 5.494605", "1 dict literal: {'n': 6, 'precision': 0.6449}",
                                          "1 NaN: NaN"], "03_pretrain.html": ["no figure"]}, problems
