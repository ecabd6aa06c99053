"""Roster of support teams and agents, validated from a YAML file or a decoded JSON body.

An agent belongs to one team, has a level (L1 standard agent, L2 specialist, L3 team lead or
manager, L4 executive), a list of skills, a status and a capacity of concurrent conversations.
Role flags mark who may take VIP customers, refund disputes and enterprise customers.

An agent covers a skill when the skill is listed on the agent or on the agent's team. Skills are
a closed vocabulary (`Skill`): a misspelt skill would make an agent silently unroutable, so it
is rejected with the list of allowed skills instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    Strict,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from serving.errors import RosterError
from serving.tiers import Reason

logger = logging.getLogger(__name__)

EXAMPLE_ROSTER_PATH = Path(__file__).resolve().parent / "policies" / "roster.example.yaml"

# Ids end up in URLs such as /v1/agents/{id}, so they are limited to URL-safe characters.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
MAX_ID_CHARS = 200
MAX_NAME_CHARS = 200

# A conversation cut off by a bad config value is worse than a long queue, so a capacity far
# above what one person can handle is treated as a typo.
MAX_CAPACITY = 100


class Level(IntEnum):
    """Seniority of an agent. A higher level outranks a lower one."""

    L1 = 1
    L2 = 2
    L3 = 3
    L4 = 4

    def __str__(self) -> str:
        return self.name

    @property
    def description(self) -> str:
        """Role that the level stands for."""
        return LEVEL_DESCRIPTIONS[self]

    def next_level(self) -> Level | None:
        """Return the level one step up, or None for L4."""
        return Level(self.value + 1) if self is not Level.L4 else None

    @classmethod
    def parse(cls, value: Any) -> Level:
        """Return the level named by `value` ("L1" to "L4", or a Level).

        Raises ValueError for anything else, including bare integers, because "2" in a roster
        file is more likely a capacity typed in the wrong place than a level.
        """
        if isinstance(value, Level):
            return value
        if isinstance(value, str) and value.strip().upper() in cls.__members__:
            return cls[value.strip().upper()]
        raise ValueError(f"level {value!r} is invalid; use one of L1, L2, L3, L4")


LEVEL_DESCRIPTIONS: dict[Level, str] = {
    Level.L1: "standard agent",
    Level.L2: "specialist",
    Level.L3: "team lead or manager",
    Level.L4: "executive",
}


class Skill(StrEnum):
    """Topic an agent or team can handle.

    `refunds` is knowledge of refund procedures. The right to approve a refund is the separate
    `can_approve_refunds` flag.
    """

    TECHNICAL = "technical"
    BILLING = "billing"
    REFUNDS = "refunds"
    ACCOUNT = "account"
    SALES = "sales"
    GENERAL = "general"


class AgentStatus(StrEnum):
    """Whether an agent takes new conversations: only `available` agents are routed to."""

    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"


# Urgent is a flag on top of a topic, not a topic, so an urgent request without a topic is
# handled as general.
REASON_SKILLS: dict[Reason, Skill] = {
    Reason.TECHNICAL: Skill.TECHNICAL,
    Reason.BILLING: Skill.BILLING,
    Reason.ACCOUNT: Skill.ACCOUNT,
    Reason.SALES: Skill.SALES,
    Reason.GENERAL: Skill.GENERAL,
    Reason.URGENT: Skill.GENERAL,
}


def _parse_level(value: Any) -> Level:
    return Level.parse(value)


LevelField = Annotated[
    Level, BeforeValidator(_parse_level), PlainSerializer(str, return_type=str, when_used="json")
]
Identifier = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)
]
DisplayName = Annotated[
    str, Strict(), StringConstraints(strip_whitespace=True, min_length=1,
                                     max_length=MAX_NAME_CHARS)
]
CustomerId = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
StrictBool = Annotated[bool, Strict()]
StrictInt = Annotated[int, Strict()]
StrictFloat = Annotated[float, Strict()]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Team(_Config):
    """A group of agents with shared skills and an optional overflow team for long waits."""

    id: Identifier
    name: DisplayName
    skills: list[Skill] = Field(default_factory=list)
    overflow_team: Identifier | None = None
    overflow_after_seconds: StrictFloat | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check_overflow(self) -> Team:
        if (self.overflow_team is None) != (self.overflow_after_seconds is None):
            raise PydanticCustomError(
                "overflow_pair",
                "overflow_team and overflow_after_seconds must be set together or both left "
                "out; got overflow_team {team}, overflow_after_seconds {seconds}",
                {"team": repr(self.overflow_team), "seconds": repr(self.overflow_after_seconds)},
            )
        if self.overflow_team == self.id:
            raise PydanticCustomError(
                "overflow_self",
                "overflow_team {team} is the team itself; name another team or leave it out",
                {"team": repr(self.id)},
            )
        return self


class Agent(_Config):
    """A person who takes escalated conversations, with the load they carry right now.

    `account_manager_for` lists the customer ids whose own account manager this agent is.
    `dedicated_account_manager` makes the agent an account manager for any VIP customer whose
    own manager is not free. `senior_technical` marks the specialists that enterprise customers
    go to, and needs level L2 or above.
    """

    id: Identifier
    name: DisplayName
    team: Identifier
    level: LevelField
    skills: list[Skill] = Field(default_factory=list)
    status: AgentStatus = AgentStatus.AVAILABLE
    capacity: StrictInt = Field(ge=1, le=MAX_CAPACITY)
    load: StrictInt = Field(default=0, ge=0)
    account_manager_for: list[CustomerId] = Field(default_factory=list)
    dedicated_account_manager: StrictBool = False
    can_approve_refunds: StrictBool = False
    senior_technical: StrictBool = False

    @model_validator(mode="after")
    def _check_agent(self) -> Agent:
        if self.load > self.capacity:
            raise PydanticCustomError(
                "load_above_capacity",
                "load {load} is above capacity {capacity}; load counts the conversations the "
                "agent has now and must be 0 to {capacity}",
                {"field": "load", "load": self.load, "capacity": self.capacity},
            )
        if self.senior_technical and self.level < Level.L2:
            raise PydanticCustomError(
                "senior_technical_level",
                "senior_technical needs level L2 or above, the agent is {level}; raise the "
                "level or set senior_technical: false",
                {"field": "senior_technical", "level": str(self.level)},
            )
        return self

    @property
    def is_account_manager(self) -> bool:
        """Whether the agent has the account-manager role for some or all VIP customers."""
        return self.dedicated_account_manager or bool(self.account_manager_for)


class Roster(_Config):
    """Every team and agent the router may send conversations to."""

    version: Literal[1] = 1
    teams: list[Team] = Field(min_length=1)
    agents: list[Agent] = Field(default_factory=list)

    _teams_by_id: dict[str, Team] = PrivateAttr(default_factory=dict)
    _agents_by_id: dict[str, Agent] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_references(self) -> Roster:
        problems = _reference_problems(self)
        if problems:
            raise PydanticCustomError(
                "roster_references", "{problems}", {"problems": "\n".join(problems)}
            )
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._teams_by_id = {team.id: team for team in self.teams}
        self._agents_by_id = {agent.id: agent for agent in self.agents}

    def team(self, team_id: str) -> Team:
        """Return the team with id `team_id`, or raise KeyError naming the known ids."""
        try:
            return self._teams_by_id[team_id]
        except KeyError:
            raise KeyError(f"team {team_id!r} is not in the roster; teams: "
                           f"{', '.join(self._teams_by_id)}") from None

    def agent(self, agent_id: str) -> Agent:
        """Return the agent with id `agent_id`, or raise KeyError."""
        try:
            return self._agents_by_id[agent_id]
        except KeyError:
            raise KeyError(f"agent {agent_id!r} is not in the roster") from None

    def has_agent(self, agent_id: str) -> bool:
        """Return whether an agent with id `agent_id` is in the roster."""
        return agent_id in self._agents_by_id

    def has_team(self, team_id: str) -> bool:
        """Return whether a team with id `team_id` is in the roster."""
        return team_id in self._teams_by_id

    def members(self, team_id: str) -> Iterator[Agent]:
        """Yield the agents of team `team_id`, in roster order."""
        return (agent for agent in self.agents if agent.team == team_id)

    def covers(self, agent: Agent, skill: Skill) -> bool:
        """Return whether `skill` is listed on the agent or on the agent's team."""
        return skill in agent.skills or skill in self._teams_by_id[agent.team].skills

    def skill_for(self, reason: Reason) -> Skill:
        """Return the skill that routes `reason`: its own skill, or general when no agent in
        the roster covers it, so a roster without a sales team sends sales to general support.
        """
        skill = REASON_SKILLS[reason]
        if any(self.covers(agent, skill) for agent in self.agents):
            return skill
        return Skill.GENERAL

    def team_for(self, skill: Skill) -> Team:
        """Return the team where conversations for `skill` queue when no agent is free.

        That is the first team listing `skill`, else the first listing general, else the first
        team.
        """
        for wanted in (skill, Skill.GENERAL):
            for team in self.teams:
                if wanted in team.skills:
                    return team
        return self.teams[0]

    def to_dict(self) -> dict[str, Any]:
        """Return the roster as plain JSON types, in the format `roster_from_dict` reads."""
        return self.model_dump(mode="json")


def _reference_problems(roster: Roster) -> list[str]:
    problems = [*_duplicate_problems(roster), *_agent_team_problems(roster)]
    problems.extend(_agent_role_problems(roster))
    problems.extend(_overflow_problems(roster))
    return problems


def _duplicate_problems(roster: Roster) -> list[str]:
    problems: list[str] = []
    id_lists = (("teams", [team.id for team in roster.teams]),
                ("agents", [agent.id for agent in roster.agents]))
    for key, ids in id_lists:
        first_index: dict[str, int] = {}
        for index, item_id in enumerate(ids):
            if item_id in first_index:
                problems.append(f"{key}[{index}].id: duplicate id {item_id!r}, first used by "
                                f"{key}[{first_index[item_id]}]; ids must be unique")
            else:
                first_index[item_id] = index
    return problems


def _agent_team_problems(roster: Roster) -> list[str]:
    team_ids = [team.id for team in roster.teams]
    return [
        f"agents[{index}].team: unknown team {agent.team!r} for agent {agent.id!r}; teams in "
        f"this roster: {', '.join(team_ids)}"
        for index, agent in enumerate(roster.agents)
        if agent.team not in team_ids
    ]


def _agent_role_problems(roster: Roster) -> list[str]:
    # A role flag on an agent who never gets the matching topic could never be used by routing.
    skills_of_team = {team.id: set(team.skills) for team in roster.teams}
    problems: list[str] = []
    for index, agent in enumerate(roster.agents):
        if agent.team not in skills_of_team:
            continue
        skills = set(agent.skills) | skills_of_team[agent.team]
        if agent.can_approve_refunds and Skill.BILLING not in skills:
            problems.append(
                f"agents[{index}].can_approve_refunds: agent {agent.id!r} may approve refunds "
                f"but neither the agent nor team {agent.team!r} lists the billing skill; add "
                "'billing' to the agent's skills or set can_approve_refunds: false"
            )
        if agent.senior_technical and Skill.TECHNICAL not in skills:
            problems.append(
                f"agents[{index}].senior_technical: agent {agent.id!r} is marked senior "
                f"technical but neither the agent nor team {agent.team!r} lists the technical "
                "skill; add 'technical' to the agent's skills or set senior_technical: false"
            )
    return problems


def _overflow_problems(roster: Roster) -> list[str]:
    index_of = {team.id: index for index, team in enumerate(roster.teams)}
    overflow_of = {team.id: team.overflow_team for team in roster.teams}
    problems: list[str] = []
    for index, team in enumerate(roster.teams):
        if team.overflow_team is not None and team.overflow_team not in index_of:
            problems.append(f"teams[{index}].overflow_team: unknown team {team.overflow_team!r} "
                            f"for team {team.id!r}; teams in this roster: "
                            f"{', '.join(index_of)}")

    reported: set[str] = set()
    for team in roster.teams:
        cycle = _overflow_cycle(team.id, overflow_of)
        if cycle and not reported.intersection(cycle):
            reported.update(cycle)
            problems.append(
                f"teams[{index_of[cycle[0]]}].overflow_team: overflow loop "
                f"{' -> '.join([*cycle, cycle[0]])}; a queued conversation would move between "
                "these teams forever, so end the chain at a team without overflow_team"
            )
    return problems


def _overflow_cycle(start: str, overflow_of: dict[str, str | None]) -> list[str]:
    path: list[str] = []
    current: str | None = start
    while current is not None and current in overflow_of:
        if current in path:
            return path[path.index(current):]
        path.append(current)
        current = overflow_of[current]
    return []


# --------------------------------------------------------------------------------- loading


def load_roster(path: str | Path) -> Roster:
    """Read and validate a roster YAML file.

    Raises RosterError when the file is missing, unreadable, not YAML, or fails validation.
    The message names each bad key path with its value and what is allowed.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RosterError(f"{source}: roster file not found. Pass the path of a roster YAML "
                          f"file; {EXAMPLE_ROSTER_PATH} is an example") from None
    except UnicodeDecodeError as error:
        raise RosterError(f"{source}: not UTF-8 text ({error.reason} at byte {error.start}). "
                          "Save the file as UTF-8") from None
    except OSError as error:
        raise RosterError(f"{source}: cannot be read: {error.strerror}") from None

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RosterError(f"{source}: invalid YAML: {_describe_yaml_error(error)}") from None
    if data is None:
        raise RosterError(f"{source}: file is empty. Copy {EXAMPLE_ROSTER_PATH} as a start")

    roster = roster_from_dict(data, source=source)
    logger.info("loaded roster from %s (%d teams, %d agents)", source, len(roster.teams),
                len(roster.agents))
    return roster


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is None:
        return problem
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


def roster_from_dict(data: Any, source: str = "roster") -> Roster:
    """Validate a decoded roster mapping (from YAML or a JSON request body).

    Raises RosterError with one line per problem, each prefixed with `source` and naming the
    key path (such as `agents[3].capacity`), the bad value and what is allowed.
    """
    if not isinstance(data, dict):
        raise RosterError(f"{source}: the roster is a {type(data).__name__}, but it must be a "
                          f"mapping with the keys {', '.join(Roster.model_fields)}")
    try:
        return Roster.model_validate(data)
    except ValidationError as error:
        problems = [
            problem
            for detail in error.errors(include_url=False)
            for problem in _describe_problems(detail, data)
        ]
        raise RosterError([f"{source}: {problem}" for problem in problems]) from None


def _describe_problems(detail: Any, data: dict[str, Any]) -> list[str]:
    # Cross-reference problems arrive together in one error because the model validator
    # collects all of them before raising.
    if detail.get("type") == "roster_references":
        return str(detail["ctx"]["problems"]).split("\n")
    return [_describe_problem(detail, data)]


def _describe_problem(detail: Any, data: dict[str, Any]) -> str:
    location = tuple(detail.get("loc", ()))
    kind = detail.get("type")
    context = detail.get("ctx") or {}

    if "field" in context:
        location = (*location, context["field"])
    key = _key_path(location, data)

    if kind == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(location[:-1]))
        return f"{key}: unknown key; allowed keys here: {allowed}"
    if kind == "missing":
        return f"{key}: required key is missing; see {EXAMPLE_ROSTER_PATH} for an example"
    if kind == "value_error":
        return f"{key}: {context['error']}"
    message = str(detail.get("msg", "invalid value"))
    if kind in {"load_above_capacity", "senior_technical_level", "overflow_pair",
                "overflow_self"}:
        return f"{key}: {message}"
    return f"{key}: {_short_repr(detail.get('input'))} is invalid: " \
        f"{message[:1].lower()}{message[1:]}"


def _key_path(location: tuple[Any, ...], data: dict[str, Any]) -> str:
    path = ""
    for position, part in enumerate(location):
        if isinstance(part, int):
            path += f"[{part}]"
            item_id = _item_id(data, location[: position + 1])
            if item_id is not None:
                path += f" (id {item_id!r})"
        else:
            path += f".{part}" if path else str(part)
    return path or "roster"


def _item_id(data: dict[str, Any], location: tuple[Any, ...]) -> str | None:
    if len(location) != 2 or location[0] not in {"teams", "agents"}:
        return None
    items = data.get(location[0])
    if not isinstance(items, list) or not 0 <= location[1] < len(items):
        return None
    item = items[location[1]]
    value = item.get("id") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def _allowed_keys(location: tuple[Any, ...]) -> list[str]:
    models: dict[str, type[BaseModel]] = {"teams": Team, "agents": Agent}
    if not location:
        return list(Roster.model_fields)
    model = models.get(str(location[0]))
    return list(model.model_fields) if model is not None else []


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
