"""Render the report content and its charts as one self-contained HTML page.

Jinja2 escapes every value by default, so text from the data (sources, reasons, ids, file
names) cannot inject markup. The page loads nothing: no script, and the CSS and the charts are
inline.
"""

from __future__ import annotations

import math
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from pipelines.evaluate.table import BINARY_COLUMNS_WITH_THRESHOLD, MULTICLASS_COLUMNS
from pipelines.report.content import ReportContent

BINARY_HEADLINE = (*BINARY_COLUMNS_WITH_THRESHOLD, "alert_rate", "n")
MULTICLASS_HEADLINE = (*MULTICLASS_COLUMNS, "f1_negative", "f1_neutral", "f1_positive", "n")
LEAD_HEADLINE = ("n_conversations", "caught", "missed", "catch_rate", "mean_lead_turns",
                 "median_lead_turns", "false_alarm_conversations", "false_alarm_rate")
SWEEP_COLUMNS = ("alert_rate_conversations", "precision", "recall", "f1", "catch_rate",
                 "mean_lead_turns", "median_lead_turns", "false_alarm_rate")
GROUP_COLUMNS = ("roc_auc", "pr_auc", "precision", "recall", "alert_rate_conversations",
                 "catch_rate", "mean_lead_turns", "false_alarm_rate")

SCORER_NAMES = {
    "model": "model",
    "model_prepare": "model at the prepare threshold",
    "vader": "VADER (baseline)",
    "rules": "rules alone (baseline)",
    "decision": "decision (model and rules)",
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 1.5em 2em 4em; color: #1d2430; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #d8dde6; padding-bottom: 0.2em; margin-top: 2.2em; }
h3 { margin-top: 1.6em; }
nav ol { columns: 3; font-size: 0.95em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.88em; }
th, td { border: 1px solid #d8dde6; padding: 0.25em 0.6em; }
th { background: #f2f4f8; text-align: left; font-weight: 600; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
tr.marked td { background: #fff6d9; font-weight: 600; }
.muted, caption { color: #5b6475; font-size: 0.9em; }
caption { caption-side: bottom; text-align: left; padding-top: 0.3em; }
section { overflow-x: auto; }
img.chart { max-width: 100%; display: block; margin: 0.4em 0 0.6em; }
.matrices { display: flex; flex-wrap: wrap; gap: 1.5em; }
code { background: #f2f4f8; padding: 0 0.25em; border-radius: 3px; }
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Model report: {{ bundle.name }}</title>
<style>{{ css }}</style>
</head>
<body>
{%- macro metric_table(id, results, columns, caption) %}
<table id="{{ id }}">
<thead><tr><th>scorer</th>
{%- for column in columns %}<th>{{ column | header }}</th>{% endfor %}</tr></thead>
<tbody>
{%- for name, values in results.items() if values is mapping %}
<tr><td>{{ scorer_names.get(name, name) }}</td>
{%- for column in columns %}
<td class="number">{{ values.get(column) | number }}</td>
{%- endfor %}</tr>
{%- endfor %}
</tbody>
<caption>{{ caption }}</caption>
</table>
{%- endmacro %}
{%- macro group_table(id, rows, label) %}
<table id="{{ id }}">
<thead><tr><th>{{ label }}</th><th>conversations</th><th>customer turns</th>
<th>positive rate</th><th>scorer</th>
{%- for column in group_columns %}<th>{{ column | header }}</th>{% endfor %}</tr></thead>
<tbody>
{%- for row in rows %}{% for system in ("model", "rules") %}
<tr>
{%- if loop.first %}
<td rowspan="2">{{ row.group }}</td>
<td rowspan="2" class="number">{{ row.n_conversations | number }}</td>
<td rowspan="2" class="number">{{ row.n_turns | number }}</td>
<td rowspan="2" class="number">{{ row.positive_rate | number }}</td>
{%- endif %}
<td>{{ scorer_names[system] }}</td>
{%- for column in group_columns %}
<td class="number">{{ row[system][column] | number }}</td>
{%- endfor %}</tr>
{%- endfor %}{% endfor %}
</tbody>
</table>
{%- endmacro %}
{%- macro fact(name, value) %}
<tr><th>{{ name }}</th><td class="number">{{ value | number }}</td></tr>
{%- endmacro %}

<header>
<h1>Model report: {{ bundle.name }}</h1>
<p class="muted">Generated {{ generated_at }} on {{ data.description }}.
Each model is shown beside its baseline: VADER for sentiment and frustration, the rules alone
for escalation. "nan" marks a value that the data leaves undefined.</p>
</header>
<nav><ol>
<li><a href="#bundle">Bundle</a></li>
<li><a href="#data">Evaluation data</a></li>
<li><a href="#summary">Every model beside its baseline</a></li>
{%- for head in heads %}
<li><a href="#head-{{ head.name }}">{{ head.name | capitalize }} head</a></li>
{%- endfor %}
<li><a href="#calibration">Calibration</a></li>
<li><a href="#thresholds">Thresholds</a></li>
<li><a href="#lead-time">Lead time</a></li>
<li><a href="#by-source">Per data source</a></li>
<li><a href="#by-reason">Per reason</a></li>
</ol></nav>

<section id="bundle">
<h2>Bundle</h2>
<table id="bundle-facts"><tbody>
<tr><th>name</th><td>{{ bundle.name }}</td></tr>
<tr><th>folder</th><td><code>{{ bundle.folder }}</code></td></tr>
<tr><th>created</th><td>{{ bundle.created_at }}</td></tr>
<tr><th>encoder</th><td>{{ bundle.encoder }}</td></tr>
{{- fact("escalation threshold", bundle.thresholds.escalation) }}
{{- fact("prepare threshold", bundle.thresholds.prepare) }}
{{- fact("frustration threshold", bundle.thresholds.frustration) }}
{%- if bundle.applied_thresholds != {"escalation": bundle.thresholds.escalation,
                                     "prepare": bundle.thresholds.prepare} %}
{{- fact("escalation threshold applied (policy)", bundle.applied_thresholds.escalation) }}
{{- fact("prepare threshold applied (policy)", bundle.applied_thresholds.prepare) }}
{%- endif %}
<tr><th>MLflow run id</th><td><code>{{ bundle.mlflow_run_id or "none" }}</code></td></tr>
<tr><th>MLflow experiment</th><td>{{ bundle.mlflow_experiment or "none" }}</td></tr>
<tr><th>registered model</th><td>{{ bundle.registered_model or "none" }}</td></tr>
</tbody></table>
{%- if bundle.validation %}
<h3>Validation split (threshold choice)</h3>
<table id="validation-facts"><tbody>
{%- for name, value in bundle.validation.items() %}
{{- fact(name | header, value) }}
{%- endfor %}
</tbody></table>
{%- endif %}
<h3>Training data fingerprint</h3>
<table id="fingerprint">
<thead><tr><th>file</th><th>sha256</th></tr></thead><tbody>
{%- for name, digest in bundle.training_files.items() %}
<tr><td>{{ name }}</td><td><code>{{ digest }}</code></td></tr>
{%- else %}
<tr><td colspan="2">the manifest records no training files</td></tr>
{%- endfor %}
</tbody></table>
{%- if bundle.training_counts %}
<table id="training-counts">
<thead><tr><th>split</th><th>rows</th></tr></thead><tbody>
{%- for name, count in bundle.training_counts.items() %}
<tr><td>{{ name }}</td><td class="number">{{ count | number }}</td></tr>
{%- endfor %}
</tbody></table>
{%- endif %}
</section>

<section id="data">
<h2>Evaluation data</h2>
<p>Data: {{ data.description }}. It has {{ data.labelled_messages | number }} labelled customer
messages and {{ data.rated_conversations | number }} conversations with satisfaction ratings
({{ data.rated_turns | number }} customer turns). A customer turn is an escalation positive when
it or one of the next {{ data.horizon }} customer turns is rated {{ data.dissatisfied_rating }}
or lower; lead times count customer turns before the first such rating.</p>
<table id="data-sources">
<thead><tr><th>source</th><th>labelled messages</th><th>rated conversations</th>
<th>rated customer turns</th></tr></thead>
<tbody>
{%- for source, counts in data.sources.items() %}
<tr><td>{{ source }}</td>
<td class="number">{{ counts.messages | number }}</td>
<td class="number">{{ counts.conversations | number }}</td>
<td class="number">{{ counts.turns | number }}</td></tr>
{%- endfor %}
</tbody></table>
</section>

<section id="summary">
<h2>Every model beside its baseline</h2>
{%- if metrics.get("sentiment") %}
<h3>Sentiment (3 classes)</h3>
{{ metric_table("summary-sentiment", metrics.sentiment, multiclass_columns,
                "Argmax class; ECE of the top-class probability, 15 bins.") }}
{%- endif %}
{%- if metrics.get("frustration") %}
<h3>Frustration</h3>
{{ metric_table("summary-frustration", metrics.frustration, binary_columns,
                "Alert when the score is at or above the threshold; "
                ~ "VADER's score is max(0, -compound).") }}
{%- endif %}
{%- if metrics.get("escalation") %}
<h3>Escalation per customer turn</h3>
{{ metric_table("summary-escalation", metrics.escalation, binary_columns,
                "The rules' score is the most urgent tier fired so far divided by 3; "
                ~ "they alert at any tier.") }}
<h3>Lead time before the first dissatisfied turn</h3>
{{ metric_table("summary-lead-time", lead_times, lead_columns,
                "A conversation is caught when an alert fires at or before its first "
                ~ "dissatisfied turn; a false alarm is an alert in a conversation that "
                ~ "never gets there.") }}
{%- else %}
<p class="muted">No conversation in the data carries satisfaction ratings, so the escalation
head is not evaluated.</p>
{%- endif %}
</section>

{%- for head in heads %}
<section id="head-{{ head.name }}">
<h2>{{ head.name | capitalize }} head beside {{ head.baseline }}</h2>
{%- if charts.ranking.get(head.name) %}
<img class="chart" src="{{ charts.ranking[head.name] }}"
 alt="ROC and precision-recall curves of the {{ head.name }} head and {{ head.baseline }}">
{%- else %}
<p class="muted">The labels contain one class only, so no ROC or precision-recall curve
exists.</p>
{%- endif %}
<h3>Confusion matrices</h3>
<div class="matrices">
{%- for matrix in head.confusion %}
<table class="confusion" id="confusion-{{ head.name }}-{{ loop.index }}">
<thead><tr><th>true \\ predicted</th>
{%- for name in matrix.classes %}<th>{{ name }}</th>{% endfor %}</tr></thead>
<tbody>
{%- for row in matrix.counts %}
<tr><th>{{ matrix.classes[loop.index0] }}</th>
{%- for count in row %}<td class="number">{{ count | number }}</td>{% endfor %}</tr>
{%- endfor %}
</tbody>
<caption>{{ matrix.title }}: {{ matrix.rule }}</caption>
</table>
{%- endfor %}
</div>
</section>
{%- endfor %}

<section id="calibration">
<h2>Calibration</h2>
{%- if charts.reliability %}
<p>Predicted probability against the observed rate in 15 equal-width bins; the dotted diagonal
is perfect calibration, and a marker's area grows with the share of samples in its bin. The
summary tables give the expected calibration error (ece) of each curve. VADER's and the rules'
scores are not probabilities and are shown for comparison.</p>
<img class="chart" src="{{ charts.reliability }}"
 alt="Reliability diagrams of every head and its baseline">
{%- else %}
<p class="muted">No labelled data to draw reliability diagrams from.</p>
{%- endif %}
</section>

<section id="thresholds">
<h2>Escalation thresholds</h2>
{%- if sweep %}
<img class="chart" alt="Escalation head metrics across thresholds" src="{{ charts.sweep }}">
<table id="threshold-table">
<thead><tr><th>threshold</th><th>bundle threshold</th>
{%- for column in sweep_columns %}<th>{{ column | header }}</th>{% endfor %}</tr></thead>
<tbody>
{%- for row in sweep %}
<tr{% if row.marks %} class="marked"{% endif %}>
<td class="number">{{ row.threshold | number }}</td><td>{{ row.marks | join(", ") }}</td>
{%- for column in sweep_columns %}
<td class="number">{{ row[column] | number }}</td>
{%- endfor %}</tr>
{%- endfor %}
</tbody>
<caption>Precision, recall and F1 per customer turn; the alert, catch and false-alarm rates
and the lead times per conversation.</caption>
</table>
{%- else %}
<p class="muted">No conversation with satisfaction ratings, so there is no threshold table.</p>
{%- endif %}
</section>

<section id="lead-time">
<h2>Lead time</h2>
{%- if charts.lead_time %}
<p>Customer turns between the first alert and the first dissatisfied turn (0: the alert fires
at that turn), over the conversations caught.</p>
<img class="chart" alt="Lead-time histogram" src="{{ charts.lead_time }}">
<table id="lead-time-histogram">
<thead><tr><th>lead (customer turns)</th>
{%- for name in lead_times %}<th>{{ scorer_names.get(name, name) }}</th>{% endfor %}</tr>
</thead>
<tbody>
{%- for lead in lead_values %}
<tr><td class="number">{{ lead }}</td>
{%- for report in lead_times.values() %}
<td class="number">{{ report.histogram.get(lead, 0) | number }}</td>
{%- endfor %}</tr>
{%- endfor %}
<tr><th>missed</th>
{%- for report in lead_times.values() %}
<td class="number">{{ report.missed | number }}</td>
{%- endfor %}</tr>
</tbody></table>
{%- else %}
<p class="muted">No conversation was caught, so there is no lead time to show.</p>
{%- endif %}
</section>

<section id="by-source">
<h2>Per data source</h2>
{%- if messages_by_source %}
<h3>Labelled messages</h3>
<table id="messages-by-source">
<thead><tr><th>source</th><th>messages</th><th>scorer</th><th>sentiment macro_f1</th>
<th>sentiment accuracy</th><th>frustration f1</th><th>frustration pr_auc</th></tr></thead>
<tbody>
{%- for row in messages_by_source %}{% for scorer in ("model", "vader") %}
<tr>
{%- if loop.first %}
<td rowspan="2">{{ row.group }}</td><td rowspan="2" class="number">{{ row.n | number }}</td>
{%- endif %}
<td>{{ scorer_names[scorer] }}</td>
<td class="number">{{ row.sentiment[scorer].macro_f1 | number }}</td>
<td class="number">{{ row.sentiment[scorer].accuracy | number }}</td>
{%- if row.get("frustration") %}
<td class="number">{{ row.frustration[scorer].f1 | number }}</td>
<td class="number">{{ row.frustration[scorer].pr_auc | number }}</td>
{%- else %}
<td class="number">-</td><td class="number">-</td>
{%- endif %}</tr>
{%- endfor %}{% endfor %}
</tbody></table>
{%- endif %}
{%- if escalation_by_source %}
<h3>Escalation</h3>
{{ group_table("escalation-by-source", escalation_by_source, "source") }}
{%- endif %}
</section>

<section id="by-reason">
<h2>Per reason</h2>
{%- if alerts_by_reason %}
<p>Each conversation's first alert, grouped by the reason category of the served decision at
that turn. Precision is the share of alerted conversations that reach a dissatisfied turn; in
time counts alerts at or before the first one.</p>
<table id="alerts-by-reason">
<thead><tr><th>scorer</th><th>reason</th><th>alerted conversations</th>
<th>reach dissatisfaction</th><th>in time</th><th>precision</th><th>mean_lead_turns</th></tr>
</thead>
<tbody>
{%- for row in alerts_by_reason %}
<tr><td>{{ scorer_names.get(row.system, row.system) }}</td><td>{{ row.reason }}</td>
{%- for column in ("alerted", "dissatisfied", "in_time", "precision", "mean_lead_turns") %}
<td class="number">{{ row[column] | number }}</td>
{%- endfor %}</tr>
{%- endfor %}
</tbody></table>
{%- else %}
<p class="muted">No alert fired, so there is no reason to group by.</p>
{%- endif %}
{%- if escalation_by_labelled_reason %}
<h3>Per labelled escalation reason</h3>
{{ group_table("escalation-by-labelled-reason", escalation_by_labelled_reason,
               "labels.escalation_reason") }}
{%- else %}
<p class="muted">No conversation carries <code>labels.escalation_reason</code>, so there are
no metrics per labelled reason.</p>
{%- endif %}
</section>
</body>
</html>
"""


def format_number(value: Any) -> str:
    """Format a metric for a table cell: integers with separators, floats with 3 decimals."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if hasattr(value, "item"):
        return format_number(value.item())
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def render_html(content: ReportContent, charts: dict[str, Any]) -> str:
    """Render the page. `charts` contains the data URIs from `pipelines.report.figures`."""
    environment = Environment(autoescape=True, undefined=StrictUndefined,
                              trim_blocks=False, lstrip_blocks=False)
    environment.filters["number"] = format_number
    # Metric keys keep their names, but with spaces a header can wrap in a narrow column.
    environment.filters["header"] = lambda key: str(key).replace("_", " ")
    template = environment.from_string(TEMPLATE)
    lead_values = sorted({int(lead) for report in content.lead_times.values()
                          for lead in report["histogram"]})
    return template.render(
        # The CSS is this module's constant, and escaping would break its quotes: inside
        # <style> a browser does not decode entities.
        css=Markup(CSS),
        bundle=content.bundle,
        data=content.data,
        metrics=content.metrics,
        heads=content.heads,
        sweep=content.sweep,
        lead_times=content.lead_times,
        lead_values=lead_values,
        messages_by_source=content.messages_by_source,
        escalation_by_source=content.escalation_by_source,
        alerts_by_reason=content.alerts_by_reason,
        escalation_by_labelled_reason=content.escalation_by_labelled_reason,
        generated_at=content.generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        charts=charts,
        scorer_names=SCORER_NAMES,
        binary_columns=BINARY_HEADLINE,
        multiclass_columns=MULTICLASS_HEADLINE,
        lead_columns=LEAD_HEADLINE,
        sweep_columns=SWEEP_COLUMNS,
        group_columns=GROUP_COLUMNS,
    )
