"""Tests of roster validation: the example file, levels, and errors that name key and value."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from serving.errors import RosterError
from serving.roster import (
    EXAMPLE_ROSTER_PATH,
    Level,
    Skill,
    load_roster,
    roster_from_dict,
)
from serving.tiers import Reason

VALID: dict[str, Any] = {
    "version": 1,
    "teams": [
        {"id": "general", "name": "General support", "skills": ["general"]},
        {"id": "technical", "name": "Technical support", "skills": ["technical"],
         "overflow_team": "general", "overflow_after_seconds": 120},
    ],
    "agents": [
        {"id": "g1", "name": "Gina", "team": "general", "level": "L1", "capacity": 3},
        {"id": "t1", "name": "Tom", "team": "technical", "level": "L2", "capacity": 2,
         "load": 1, "senior_technical": True},
    ],
}


def edited(**changes: Any) -> dict[str, Any]:
    """Return a deep copy of VALID with `changes` applied at dotted key paths."""
    data = copy.deepcopy(VALID)
    for path, value in changes.items():
        target: Any = data
        parts = path.split("__")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        target[int(last) if last.isdigit() else last] = value
    return data


def problems_of(data: Any) -> list[str]:
    with pytest.raises(RosterError) as caught:
        roster_from_dict(data, source="body")
    return caught.value.problems


# ------------------------------------------------------------------------------ example


def test_example_roster_loads() -> None:
    roster = load_roster(EXAMPLE_ROSTER_PATH)

    assert [team.id for team in roster.teams] == ["general", "technical", "billing",
                                                   "accounts", "sales"]
    assert len(roster.agents) == 13
    assert {agent.level for agent in roster.agents} == set(Level)


def test_example_roster_has_special_roles() -> None:
    roster = load_roster(EXAMPLE_ROSTER_PATH)

    assert any(agent.dedicated_account_manager for agent in roster.agents)
    assert any(agent.senior_technical for agent in roster.agents)
    refund_approvers = [agent for agent in roster.agents if agent.can_approve_refunds]
    assert "billing" in {agent.team for agent in refund_approvers}


def test_roster_round_trips_through_dict() -> None:
    roster = load_roster(EXAMPLE_ROSTER_PATH)

    again = roster_from_dict(roster.to_dict(), source="round trip")

    assert again == roster
    assert roster.to_dict()["agents"][0]["level"] == "L1"


# ------------------------------------------------------------------------------- levels


def test_level_ordering() -> None:
    assert Level.L1 < Level.L2 < Level.L3 < Level.L4


def test_level_next_level() -> None:
    assert Level.L3.next_level() is Level.L4
    assert Level.L4.next_level() is None


def test_level_parse_accepts_names() -> None:
    assert Level.parse("L2") is Level.L2
    assert Level.parse(" l3 ") is Level.L3


def test_level_parse_rejects_integer() -> None:
    with pytest.raises(ValueError, match="level 2 is invalid; use one of L1, L2, L3, L4"):
        Level.parse(2)


def test_level_prints_name() -> None:
    assert str(Level.L4) == "L4"


# ------------------------------------------------------------------------------ lookups


def test_covers_team_and_agent_skills() -> None:
    roster = roster_from_dict(edited(agents__0__skills=["sales"]))
    gina, tom = roster.agents

    assert roster.covers(gina, Skill.GENERAL)
    assert roster.covers(gina, Skill.SALES)
    assert not roster.covers(tom, Skill.SALES)


def test_skill_for_uncovered_reason_is_general() -> None:
    roster = roster_from_dict(VALID)

    assert roster.skill_for(Reason.TECHNICAL) is Skill.TECHNICAL
    assert roster.skill_for(Reason.BILLING) is Skill.GENERAL
    assert roster.skill_for(Reason.URGENT) is Skill.GENERAL


def test_team_for_falls_back_to_general_team() -> None:
    roster = roster_from_dict(VALID)

    assert roster.team_for(Skill.TECHNICAL).id == "technical"
    assert roster.team_for(Skill.SALES).id == "general"


# -------------------------------------------------------------------------- validation


def test_valid_roster_loads() -> None:
    roster = roster_from_dict(VALID)

    assert roster.agent("t1").load == 1
    assert roster.team("technical").overflow_team == "general"


def test_unknown_team_names_key_and_value() -> None:
    problems = problems_of(edited(agents__1__team="tech"))

    assert problems == ["body: agents[1].team: unknown team 'tech' for agent 't1'; teams in "
                        "this roster: general, technical"]


def test_duplicate_agent_id_names_first_use() -> None:
    problems = problems_of(edited(agents__1__id="g1"))

    assert problems == ["body: agents[1].id: duplicate id 'g1', first used by agents[0]; ids "
                        "must be unique"]


def test_duplicate_team_id_rejected() -> None:
    data = edited()
    data["teams"].append({"id": "general", "name": "Second general"})

    assert problems_of(data)[0].startswith("body: teams[2].id: duplicate id 'general'")


def test_load_above_capacity_names_agent() -> None:
    problems = problems_of(edited(agents__1__load=5))

    assert len(problems) == 1
    assert problems[0].startswith("body: agents[1] (id 't1').load: load 5 is above capacity 2")


def test_unknown_skill_lists_allowed() -> None:
    problems = problems_of(edited(agents__0__skills=["biling"]))

    assert problems == ["body: agents[0] (id 'g1').skills[0]: 'biling' is invalid: input "
                        "should be 'technical', 'billing', 'refunds', 'account', 'sales' or "
                        "'general'"]


def test_negative_capacity_rejected() -> None:
    problems = problems_of(edited(agents__0__capacity=-1))

    assert problems == ["body: agents[0] (id 'g1').capacity: -1 is invalid: input should be "
                        "greater than or equal to 1"]


def test_boolean_capacity_rejected() -> None:
    problems = problems_of(edited(agents__0__capacity=True))

    assert problems[0].startswith("body: agents[0] (id 'g1').capacity: True is invalid")


def test_unknown_level_lists_allowed() -> None:
    problems = problems_of(edited(agents__0__level="L5"))

    assert problems == ["body: agents[0] (id 'g1').level: level 'L5' is invalid; use one of "
                        "L1, L2, L3, L4"]


def test_unknown_status_lists_allowed() -> None:
    problems = problems_of(edited(agents__0__status="lunch"))

    assert problems == ["body: agents[0] (id 'g1').status: 'lunch' is invalid: input should be "
                        "'available', 'busy' or 'away'"]


def test_unknown_key_lists_allowed_keys() -> None:
    problems = problems_of(edited(agents__0__seniority="high"))

    assert problems[0].startswith("body: agents[0] (id 'g1').seniority: unknown key; allowed "
                                  "keys here: id, name, team, level, skills, status")


def test_missing_key_named() -> None:
    data = edited()
    del data["agents"][0]["capacity"]

    assert problems_of(data)[0].startswith("body: agents[0] (id 'g1').capacity: required key "
                                           "is missing")


def test_overflow_loop_rejected() -> None:
    data = edited(teams__0__overflow_team="technical", teams__0__overflow_after_seconds=60)

    assert problems_of(data) == [
        "body: teams[0].overflow_team: overflow loop general -> technical -> general; a "
        "queued conversation would move between these teams forever, so end the chain at a "
        "team without overflow_team"
    ]


def test_overflow_loop_of_three_reported_once() -> None:
    data = edited(teams__0__overflow_team="billing", teams__0__overflow_after_seconds=60)
    data["teams"].append({"id": "billing", "name": "Billing", "skills": ["billing"],
                          "overflow_team": "technical", "overflow_after_seconds": 60})
    data["teams"][1]["overflow_team"] = "general"

    problems = problems_of(data)

    assert len(problems) == 1
    assert "overflow loop general -> billing -> technical -> general" in problems[0]


def test_overflow_unknown_team_rejected() -> None:
    problems = problems_of(edited(teams__1__overflow_team="nowhere"))

    assert problems == ["body: teams[1].overflow_team: unknown team 'nowhere' for team "
                        "'technical'; teams in this roster: general, technical"]


def test_overflow_team_without_seconds_rejected() -> None:
    data = edited()
    del data["teams"][1]["overflow_after_seconds"]

    assert problems_of(data)[0].startswith(
        "body: teams[1] (id 'technical'): overflow_team and overflow_after_seconds must be "
        "set together"
    )


def test_overflow_to_itself_rejected() -> None:
    problems = problems_of(edited(teams__1__overflow_team="technical"))

    assert problems[0].startswith("body: teams[1] (id 'technical'): overflow_team "
                                  "'technical' is the team itself")


def test_senior_technical_needs_level_two() -> None:
    problems = problems_of(edited(agents__1__level="L1"))

    assert problems == ["body: agents[1] (id 't1').senior_technical: senior_technical needs "
                        "level L2 or above, the agent is L1; raise the level or set "
                        "senior_technical: false"]


def test_senior_technical_needs_technical_skill() -> None:
    problems = problems_of(edited(agents__1__team="general"))

    assert problems[0].startswith("body: agents[1].senior_technical: agent 't1' is marked "
                                  "senior technical but neither the agent nor team 'general'")


def test_refund_approver_needs_billing_skill() -> None:
    problems = problems_of(edited(agents__0__can_approve_refunds=True))

    assert problems[0].startswith("body: agents[0].can_approve_refunds: agent 'g1' may "
                                  "approve refunds but neither the agent nor team 'general' "
                                  "lists the billing skill")


def test_several_reference_problems_all_listed() -> None:
    problems = problems_of(edited(agents__0__team="nowhere", agents__1__id="g1"))

    assert len(problems) == 2


def test_empty_teams_rejected() -> None:
    problems = problems_of({"teams": [], "agents": []})

    assert problems[0].startswith("body: teams: [] is invalid")


def test_top_level_list_rejected() -> None:
    with pytest.raises(RosterError, match="body: the roster is a list, but it must be a "
                                          "mapping"):
        roster_from_dict([VALID], source="body")


def test_invalid_agent_id_characters_rejected() -> None:
    problems = problems_of(edited(agents__0__id="g 1"))

    assert problems[0].startswith("body: agents[0] (id 'g 1').id: 'g 1' is invalid")


# ------------------------------------------------------------------------------ files


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match="roster file not found"):
        load_roster(tmp_path / "absent.yaml")


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "roster.yaml"
    path.write_text("teams:\n  - id: a\n   name: [\n", encoding="utf-8")

    with pytest.raises(RosterError, match=r"invalid YAML: .* at line 3"):
        load_roster(path)


def test_empty_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "roster.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")

    with pytest.raises(RosterError, match="file is empty"):
        load_roster(path)


def test_file_errors_prefixed_with_path(tmp_path: Path) -> None:
    path = tmp_path / "roster.yaml"
    path.write_text("teams:\n  - id: a\n    name: A\nagents:\n  - id: x\n    name: X\n"
                    "    team: b\n    level: L1\n    capacity: 1\n", encoding="utf-8")

    with pytest.raises(RosterError) as caught:
        load_roster(path)

    assert caught.value.problems == [f"{path}: agents[0].team: unknown team 'b' for agent "
                                     "'x'; teams in this roster: a"]
