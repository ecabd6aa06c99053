"""Everything the report shows, computed from the collected rows as plain data."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.evaluate.evaluation import (
    RULE_ALERT_THRESHOLD,
    SENTIMENT_NAMES,
    VADER_FRUSTRATION_THRESHOLD,
)
from pipelines.report.curves import (
    ConfusionMatrix,
    RankingCurves,
    ReliabilityCurve,
    argmax_confusion,
    binary_confusion,
    one_vs_rest_curves,
    operating_point,
    ranking_curves,
    reliability_curve,
    threshold_sweep,
    top_label_reliability,
)
from pipelines.report.data import MessageRows, ReportRows
from pipelines.report.summary import (
    alerts_by_reason,
    escalation_by_group,
    escalation_metrics,
    message_metrics,
    messages_by_source,
    pooled,
)
from serving.bundle import Manifest
from serving.decision import DecisionThresholds

# Group name of conversations without labels.escalation_reason.
NO_LABELLED_REASON = "(not labelled)"


@dataclass(frozen=True)
class HeadSection:
    """Curves, reliability and confusion matrices of one head beside its baseline."""

    name: str
    baseline: str
    curves: RankingCurves
    reliability: list[ReliabilityCurve]
    confusion: list[ConfusionMatrix]


@dataclass(frozen=True)
class ReportContent:
    """The numbers of one report, ready to be drawn and rendered."""

    bundle: dict[str, Any]
    data: dict[str, Any]
    metrics: dict[str, Any]
    heads: list[HeadSection]
    sweep: list[dict[str, Any]]
    lead_times: dict[str, dict[str, Any]]
    messages_by_source: list[dict[str, Any]]
    escalation_by_source: list[dict[str, Any]]
    alerts_by_reason: list[dict[str, Any]]
    escalation_by_labelled_reason: list[dict[str, Any]]
    generated_at: datetime


def build_content(
    rows: ReportRows,
    manifest: Manifest,
    thresholds: DecisionThresholds,
    *,
    bundle_dir: Path,
    data_description: str,
) -> ReportContent:
    """Compute every table and curve of the report from the rows of one scoring pass."""
    frustration_threshold = manifest.thresholds.frustration
    conversations = rows.conversations
    metrics: dict[str, Any] = {}
    heads: list[HeadSection] = []
    if rows.messages is not None:
        metrics.update(message_metrics(rows.messages, frustration_threshold))
        heads.extend(_message_heads(rows.messages, frustration_threshold))
    if conversations:
        metrics["escalation"] = escalation_metrics(conversations, thresholds.escalation,
                                                   thresholds.prepare)
        heads.append(_escalation_head(rows, thresholds))

    escalation = metrics.get("escalation", {})
    labelled_reason = any(item.labelled_reason is not None for item in conversations)
    return ReportContent(
        bundle=bundle_facts(manifest, thresholds, bundle_dir),
        data=_data_facts(rows, data_description),
        metrics=metrics,
        heads=heads,
        sweep=threshold_sweep(conversations, {"escalation": thresholds.escalation,
                                              "prepare": thresholds.prepare})
        if conversations else [],
        lead_times={name: escalation[name]["lead_time"]
                    for name in ("model", "model_prepare", "rules") if name in escalation},
        messages_by_source=messages_by_source(rows.messages, frustration_threshold)
        if rows.messages is not None else [],
        escalation_by_source=escalation_by_group(conversations, lambda item: item.source,
                                                 thresholds.escalation),
        alerts_by_reason=alerts_by_reason(conversations, thresholds.escalation),
        escalation_by_labelled_reason=escalation_by_group(
            conversations, lambda item: item.labelled_reason or NO_LABELLED_REASON,
            thresholds.escalation) if labelled_reason else [],
        generated_at=datetime.now(UTC),
    )


def bundle_facts(
    manifest: Manifest, thresholds: DecisionThresholds, bundle_dir: Path
) -> dict[str, Any]:
    """Return the manifest facts the report lists: name, dates, thresholds, data, MLflow."""
    mlflow = manifest.mlflow
    return {
        "name": manifest.name,
        "folder": str(bundle_dir),
        "created_at": manifest.created_at.isoformat(timespec="seconds"),
        "encoder": f"{manifest.encoder.source_model} ({manifest.encoder.variant})",
        "thresholds": {
            "escalation": manifest.thresholds.escalation,
            "prepare": manifest.thresholds.prepare,
            "frustration": manifest.thresholds.frustration,
        },
        # The policy may override the bundle's thresholds; the report scores with these.
        "applied_thresholds": {"escalation": thresholds.escalation,
                               "prepare": thresholds.prepare},
        "training_files": dict(manifest.training_data.get("files", {})),
        "training_counts": dict(manifest.training_data.get("counts", {})),
        "mlflow_run_id": mlflow.run_id if mlflow else None,
        "mlflow_experiment": mlflow.experiment if mlflow else None,
        "registered_model": mlflow.registered_model if mlflow else None,
        "validation": dict(manifest.metrics.get("validation", {})),
    }


def _data_facts(rows: ReportRows, description: str) -> dict[str, Any]:
    sources: dict[str, dict[str, int]] = {}
    if rows.messages is not None:
        for source in rows.messages.sources:
            sources.setdefault(source, {"messages": 0, "conversations": 0, "turns": 0})
            sources[source]["messages"] += 1
    for conversation in rows.conversations:
        entry = sources.setdefault(conversation.source,
                                   {"messages": 0, "conversations": 0, "turns": 0})
        entry["conversations"] += 1
        entry["turns"] += int(conversation.labels.size)
    return {
        "description": description,
        "labelled_messages": 0 if rows.messages is None else len(rows.messages.sources),
        "rated_conversations": len(rows.conversations),
        "rated_turns": sum(int(item.labels.size) for item in rows.conversations),
        "horizon": rows.horizon,
        "dissatisfied_rating": rows.dissatisfied_rating,
        "sources": dict(sorted(sources.items())),
    }


def _message_heads(messages: MessageRows, frustration_threshold: float) -> list[HeadSection]:
    sentiment = HeadSection(
        name="sentiment",
        baseline="VADER",
        curves=one_vs_rest_curves(messages.sentiment, {"model": messages.model_sentiment,
                                                       "VADER": messages.vader_sentiment},
                                  SENTIMENT_NAMES),
        reliability=[
            top_label_reliability("model", messages.sentiment, messages.model_sentiment),
            top_label_reliability("VADER", messages.sentiment, messages.vader_sentiment),
        ],
        confusion=[
            argmax_confusion("sentiment head", messages.sentiment, messages.model_sentiment,
                             SENTIMENT_NAMES),
            argmax_confusion("VADER", messages.sentiment, messages.vader_sentiment,
                             SENTIMENT_NAMES),
        ],
    )
    if messages.frustration is None:
        return [sentiment]

    labels = messages.frustration
    classes = ["not frustrated", "frustrated"]
    curves = replace(
        ranking_curves(labels, {"model": messages.model_frustration,
                                "VADER": messages.vader_frustration}),
        points=[
            operating_point("model", labels, messages.model_frustration, frustration_threshold),
            operating_point("VADER", labels, messages.vader_frustration,
                            VADER_FRUSTRATION_THRESHOLD),
        ],
    )
    frustration = HeadSection(
        name="frustration",
        baseline="VADER",
        curves=curves,
        reliability=[
            reliability_curve("model", labels, messages.model_frustration),
            reliability_curve("VADER (max(0, -compound))", labels, messages.vader_frustration),
        ],
        confusion=[
            binary_confusion("frustration head", labels, messages.model_frustration,
                             frustration_threshold, classes),
            binary_confusion("VADER", labels, messages.vader_frustration,
                             VADER_FRUSTRATION_THRESHOLD, classes),
        ],
    )
    return [sentiment, frustration]


def _escalation_head(rows: ReportRows, thresholds: DecisionThresholds) -> HeadSection:
    conversations = rows.conversations
    labels = pooled(conversations, lambda item: item.labels).astype(int)
    model = pooled(conversations, lambda item: item.model)
    rules = pooled(conversations, lambda item: item.rules)
    classes = ["no escalation", "escalation"]
    curves = replace(
        ranking_curves(labels, {"model": model, "rules": rules}),
        points=[
            operating_point("model, escalation", labels, model, thresholds.escalation),
            operating_point("model, prepare", labels, model, thresholds.prepare),
            operating_point("rules", labels, rules, RULE_ALERT_THRESHOLD),
        ],
    )
    return HeadSection(
        name="escalation",
        baseline="rules alone",
        curves=curves,
        reliability=[
            reliability_curve("model", labels, model),
            reliability_curve("rules (tier severity / 3)", labels, rules),
        ],
        confusion=[
            binary_confusion("escalation head at the escalation threshold", labels, model,
                             thresholds.escalation, classes),
            binary_confusion("escalation head at the prepare threshold", labels, model,
                             thresholds.prepare, classes),
            binary_confusion("rules alone", labels, rules, RULE_ALERT_THRESHOLD, classes),
        ],
    )

