import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="cdc_core · explore the lake")


@app.cell
def _():
    import marimo as mo

    from cdc_core import explore
    from cdc_core.errors import CdcError

    return CdcError, explore, mo


@app.cell
def _(mo):
    mo.md("""
    # Explore the lake

    What `cdc_core` captured: inserts (**I**), updates (**U**) and deletes (**D**) per run, the history of one
    key, and any table as of any run. This notebook only reads the lake.
    """)
    return


@app.cell
def _(explore, mo):
    notebook_args = mo.cli_args() if mo.app_meta().mode in ("edit", "run", "script") else {}
    config_path = explore.config_file(notebook_args, default=mo.notebook_dir().parent / "config.json")
    lake_box = mo.ui.text(value=explore.lake_url(config_path, notebook_args), full_width=True,
                          label="Lake: a folder, `s3://bucket/prefix` or a config file")
    reload_button = mo.ui.run_button(label="Re-read the lake")
    mo.hstack([lake_box, reload_button], align="end", widths=[5, 1])
    return config_path, lake_box, reload_button


@app.cell
def _(CdcError, config_path, explore, lake_box, mo, reload_button):
    reload_button.value  # re-run from here when pressed
    try:
        lake = explore.open_lake(lake_box.value, config=config_path)
        table_names = explore.tables(lake)
        lake_problem = None if table_names else (
            f"The lake `{lake.url}` has no captures yet: run `./cdc --once` (twice, to see changes), then "
            "re-read the lake.")
    except CdcError as exc:
        lake, table_names, lake_problem = None, [], str(exc)
    mo.stop(lake_problem is not None, mo.callout(mo.md(lake_problem or ""), kind="warn"))
    table_pick = mo.ui.dropdown(table_names, value=table_names[0], label="Table")
    table_pick
    return lake, table_pick


@app.cell
def _(config_path, explore, lake, mo, table_pick):
    run_list = explore.runs(lake, table_pick.value, explore.table_format(config_path, lake))
    run_ids = run_list["run_id"].tolist()
    changed_runs = run_list.loc[run_list["kind"] == "changes", "run_id"].tolist()
    run_pick = mo.ui.multiselect(run_ids, value=changed_runs[-1:] or run_ids[-1:], label="Runs to show")
    runs_chart = explore.counts_chart(run_list)
    mo.vstack([
        mo.md(f"## Changes per run · `{table_pick.value}`"),
        mo.ui.altair_chart(runs_chart, chart_selection=False, legend_selection=False) if runs_chart is not None
        else mo.callout(mo.md(explore.only_full_load(run_list, table_pick.value)), kind="info"),
        mo.ui.table(run_list, selection=None, page_size=5, label="Committed captures (manifests)"),
    ])
    return run_ids, run_list, run_pick, runs_chart


@app.cell
def _(mo):
    op_pick = mo.ui.multiselect(["I", "U", "D"], value=["I", "U", "D"], label="Operations")
    key_search = mo.ui.text(label="Key contains", placeholder="part of a key")
    return key_search, op_pick


@app.cell
def _(explore, key_search, lake, mo, op_pick, run_pick, table_pick):
    change_rows = explore.changes(lake, table_pick.value, run_pick.value, ops=op_pick.value,
                                  key=key_search.value)
    mo.vstack([
        mo.md("## Change rows"),
        mo.hstack([run_pick, op_pick, key_search], justify="start"),
        mo.md(f"**{change_rows.num_rows:,}** change row(s) in {len(run_pick.value)} run(s)"),
        mo.ui.table(change_rows, selection=None, page_size=10),
    ])
    return (change_rows,)


@app.cell
def _(explore, lake, mo, table_pick):
    key_options = explore.busiest_keys(lake, table_pick.value)
    key_pick = mo.ui.dropdown(key_options, value=key_options[0] if key_options else None, searchable=True,
                              label="Key (most changed first)")
    return (key_pick,)


@app.cell
def _(mo, table_pick):
    table_pick  # a fresh box for each table
    key_box = mo.ui.text(label="or type any key (composite: a/b)", placeholder="a key")
    return (key_box,)


@app.cell
def _(explore, key_box, key_pick, lake, mo, table_pick):
    chosen_key = key_box.value.strip() or key_pick.value
    mo.stop(not chosen_key, mo.vstack([mo.md("## History of a key"), mo.hstack([key_pick, key_box], justify="start"),
                                        mo.md("No key has changed yet: type one.")]))
    history = explore.key_history(lake, table_pick.value, chosen_key)
    history_line = explore.history_title(table_pick.value, chosen_key, history)
    mo.vstack([
        mo.md("## History of a key"),
        mo.hstack([key_pick, key_box], justify="start"),
        mo.md(history_line) if len(history) else mo.callout(mo.md(history_line), kind="warn"),
        *([mo.ui.table(history, selection=None, page_size=15)] if len(history) else []),
    ])
    return chosen_key, history, history_line


@app.cell
def _(mo, run_ids):
    as_of_pick = mo.ui.dropdown(run_ids, value=run_ids[-2] if len(run_ids) > 1 else run_ids[-1],
                                label="As of run")
    return (as_of_pick,)


@app.cell
def _(as_of_pick, explore, lake, mo, table_pick):
    rebuilt = explore.as_of(lake, table_pick.value, as_of_pick.value)
    since = rebuilt.since.counts
    mo.vstack([
        mo.md("## Time travel"),
        as_of_pick,
        mo.hstack([
            mo.stat(f"{rebuilt.rows:,}", label=f"rows as of {rebuilt.run_id}", bordered=True),
            mo.stat(f"{rebuilt.latest_rows:,}", label="rows in the latest full load", bordered=True),
            mo.stat(f"I {since['I']:,} · U {since['U']:,} · D {since['D']:,}",
                    label="from this run to the latest full load", bordered=True),
        ], justify="start"),
        mo.accordion({"What changed from this run to the latest full load (first rows)": rebuilt.since}),
        mo.ui.table(rebuilt.preview, selection=None, page_size=10,
                    label=f"{table_pick.value} as of run {rebuilt.run_id} (first {rebuilt.preview.num_rows:,} rows)"),
    ])
    return (rebuilt,)


@app.cell
def _(explore, lake, mo, table_pick):
    notes = explore.run_notes(lake, table_pick.value)
    mo.vstack([
        mo.md("## Schema changes and data-quality warnings"),
        mo.ui.table(notes, selection=None, page_size=10) if len(notes) else
        mo.md(f"No schema change and no warning in any run of `{table_pick.value}`."),
    ])
    return (notes,)


@app.cell
def _(explore, lake, mo, table_pick):
    quality_runs = explore.quality(lake, table_pick.value)
    quality_plot = explore.quality_chart(quality_runs)
    mo.vstack([
        mo.md("## Data quality per column"),
        mo.md("Each run's share of NULLs and distinct values (approximate) per column, from its manifest; "
              "the table lists the latest run's numbers with each column's smallest and largest value."),
        mo.ui.altair_chart(quality_plot, chart_selection=False, legend_selection=False) if quality_plot is not None
        else mo.md(f"No run of `{table_pick.value}` recorded data-quality numbers yet." if quality_runs.empty
                   else "One run so far: its numbers are below; the charts start with the second run."),
        mo.ui.table(quality_runs.tail(len(quality_runs["column"].unique()) if len(quality_runs) else 0)[
            ["run_id", "column", "nulls", "null_ratio", "distinct", "min", "max"]], selection=None, page_size=10),
    ])
    return quality_plot, quality_runs


if __name__ == "__main__":
    app.run()
