import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="cdc_core · preview a cycle")


@app.cell
def _():
    import marimo as mo

    from cdc_core import explore, load_config, run_once
    from cdc_core.errors import CdcError

    return CdcError, explore, load_config, mo, run_once


@app.cell
def _(mo):
    mo.md("""
    # Preview a cycle

    A **dry run**: fetch the chosen tables and diff them against the committed snapshots — nothing is uploaded
    to the lake and nothing is committed. Look at what would be captured, then publish it from the command line
    (`./cdc --once --skip-download` re-uses this fetch) or the TUI.
    """)
    return


@app.cell
def _(CdcError, explore, load_config, mo):
    notebook_args = mo.cli_args() if mo.app_meta().mode in ("edit", "run", "script") else {}
    config_path = explore.config_file(notebook_args, default=mo.notebook_dir().parent / "config.json")
    try:
        config = load_config(config_path)
        config_problem = None
    except CdcError as exc:
        config, config_problem = None, str(exc)
    mo.stop(config is None, mo.callout(mo.md(config_problem or ""), kind="warn"))
    lake = explore.open_lake("", config=config_path)
    table_choice = mo.ui.multiselect(config.table_names, value=config.table_names, label="Tables")
    return config, config_path, lake, table_choice


@app.cell
def _(mo):
    preview_button = mo.ui.run_button(label="Preview a cycle (dry run)", kind="success")
    return (preview_button,)


@app.cell
def _(config, config_path, mo, preview_button, table_choice):
    mo.vstack([
        mo.md(f"Config `{config_path}` · source **{config.source.type}** · lake `{config.lake.url}`"),
        mo.hstack([table_choice, preview_button], justify="start", align="end"),
    ])
    return


@app.cell
def _(CdcError, config, mo, preview_button, run_once, table_choice):
    mo.stop(not preview_button.value,
            mo.callout("Nothing has run yet: choose tables and press the button.", kind="info"))
    mo.stop(not table_choice.value, mo.callout("Choose at least one table.", kind="warn"))
    try:
        report, run_problem = run_once(config, tables=table_choice.value, dry_run=True), None
    except CdcError as exc:
        report, run_problem = None, str(exc)
    mo.stop(report is None, mo.callout(run_problem or "", kind="danger"))
    report
    return (report,)


@app.cell
def _(explore, mo, report):
    preview_counts = explore.report_counts(report)
    staged = preview_counts.loc[preview_counts["status"] == "changes", "table"].tolist()
    mo.stop(not staged, mo.md("No table has change rows in this preview (unchanged, failed, or a first "
                              "capture, which writes only a full load)."))
    preview_table = mo.ui.dropdown(staged, value=staged[0], label="Table")
    preview_chart = explore.counts_chart(preview_counts, x="table")
    mo.vstack([
        mo.md(f"## What run {report.run_id} would capture"),
        *([mo.ui.altair_chart(preview_chart, chart_selection=False, legend_selection=False)]
          if preview_chart is not None else []),
        mo.ui.table(preview_counts, selection=None, label="Per table: counts and the rows each column changed in"),
    ])
    return preview_chart, preview_counts, preview_table


@app.cell
def _(mo):
    op_pick = mo.ui.multiselect(["I", "U", "D"], value=["I", "U", "D"], label="Operations")
    key_search = mo.ui.text(label="Key contains", placeholder="part of a key")
    return key_search, op_pick


@app.cell
def _(config, explore, key_search, mo, op_pick, preview_table, report):
    preview_rows = explore.preview_changes(report, config.table(preview_table.value), ops=op_pick.value,
                                           key=key_search.value)
    mo.vstack([
        mo.md("## Change rows of the preview"),
        mo.hstack([preview_table, op_pick, key_search], justify="start"),
        mo.md(f"**{preview_rows.num_rows:,}** change row(s)"),
        mo.ui.table(preview_rows, selection=None, page_size=10),
    ])
    return (preview_rows,)


@app.cell
def _(config, explore, mo, preview_table, report):
    preview_key_options = explore.preview_keys(report, config.table(preview_table.value))
    preview_key = mo.ui.dropdown(preview_key_options, value=preview_key_options[0], searchable=True,
                                 label="Key")
    return (preview_key,)


@app.cell
def _(explore, lake, mo, preview_key, preview_table, report):
    preview_history = explore.key_history(lake, preview_table.value, preview_key.value,
                                          pending=explore.preview_file(report, preview_table.value))
    mo.vstack([
        mo.md(f"## History of a key, with the preview's change last (run {report.run_id})"),
        preview_key,
        mo.ui.table(preview_history, selection=None, page_size=15),
    ])
    return (preview_history,)


if __name__ == "__main__":
    app.run()
