"""The scenario file format, as msgspec Structs (also the source of the JSON Schema).

A scenario is a set of named states. Entering a state runs its actions (`set`, `tag`, `lookup`,
`say`...), then the state waits for a reply (`expect`, with an optional no-reply `timeout`),
moves on (`goto`, `if`/`then`/`else`, `split`), hands the conversation to a person (`handoff`)
or ends it (`end`). `intents`, `globals` and `include` let files share what they define.
See docs/scenarios.md for the reference.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from .durations import DURATION_PATTERN

LanguageCode = Annotated[str, Meta(
    pattern="^[a-z]{2,3}$", description="A language: its ISO 639-1 code (en, es, ...).")]

# `say` is one message, or a list of variants (one is picked at random on each visit); a variant
# that is itself a list is sent as several messages in a row. Either form can be given per
# language: {en: ..., es: ...}.
Messages = str | list[str | list[str]]
Say = Annotated[
    Messages | dict[str, Messages],
    Meta(description="One message, or a list of variants (one is picked at random each time); "
                     "a variant that is a list is sent as several messages in a row. "
                     "{placeholders} are filled in. Per language: a mapping of language code "
                     "to one of these ({en: ..., es: ...}).")]
Text = Annotated[
    str | dict[str, str],
    Meta(description="A message, or a mapping of language code to the message.")]
Duration = Annotated[
    str | int | float,
    Meta(description="A duration: '15s', '20m', '1h30m', '2d', or a number of seconds.",
         extra_json_schema={"pattern": DURATION_PATTERN, "minimum": 0})]
StateName = Annotated[str, Meta(description="The name of a state.")]
Names = Annotated[str | list[str], Meta(description="One name or a list of names.")]
Vars = Annotated[dict[str, str],
                 Meta(description="Variables to set; values are templates: 'see u {when}'.")]
Words = Annotated[list[str | int | float],
                  Meta(description="Words or phrases; write yes/no/on/off as they are.")]


class Condition(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A test on a variable: `{var: persona.age, lt: 18}`. Every test given must hold."""

    var: Annotated[str, Meta(description="The variable: persona.age, city.name, a capture...")]
    equals: str | int | float | None = None
    not_equals: str | int | float | None = None
    in_: Annotated[list[str | int | float] | None,
                   Meta(description="The value is one of these.")] = msgspec.field(
                       default=None, name="in")
    exists: Annotated[bool | None, Meta(description="true: the variable is set and not "
                                                    "empty; false: it is not.")] = None
    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None


Conditions = Condition | list[Condition]


class NumberMatch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A number in the reply ("$200", "2 hundred", "two hundred"), optionally in a range."""

    min: float | None = None
    max: float | None = None
    capture: Annotated[str | None,
                       Meta(description="Variable that receives the number.")] = None


class Pattern(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One way of recognising a reply. Exactly one matcher is given."""

    keywords: Annotated[Words | None, Meta(
        description="Matches if any of these words or phrases is in the reply.")] = None
    all: Annotated[Words | None, Meta(
        description="Matches if every one of these words or phrases is in the reply.")] = None
    phrase: Annotated[str | list[str] | None, Meta(
        description="These words in a row, whatever the spaces or punctuation.")] = None
    fuzzy: Annotated[Words | None, Meta(
        description="Like keywords, tolerating text-speak (u, ur, pix, hw) and typos.")] = None
    regex: Annotated[str | None, Meta(
        description="A regular expression (case-insensitive); (?P<name>...) groups become "
                    "variables.")] = None
    number: Annotated[bool | NumberMatch | None, Meta(
        description="true: any number; or {min, max, capture}.")] = None
    answer: Annotated[str | None, Meta(
        description="'yes' or 'no': a yes-like or no-like reply.")] = None
    has: Annotated[str | None, Meta(
        description="'media' (a photo...), 'phone' (a phone number) or 'url' (a link).")] = None
    intent: Annotated[str | None, Meta(description="A named intent from `intents`.")] = None


IntentPattern = str | Pattern


class Reply(Pattern, forbid_unknown_fields=True, omit_defaults=True):
    """One entry of `expect` (or of `globals`): a matcher, actions, and where to go."""

    otherwise: Annotated[bool, Meta(description="Matches every reply.")] = False
    if_: Annotated[Conditions | None, Meta(
        description="Only when this holds.")] = msgspec.field(default=None, name="if")
    capture: Annotated[str | None, Meta(
        description="Variable that receives what matched (the number, phone, link, media, or "
                    "the whole reply).")] = None
    set: Vars | None = None
    tag: Names | None = None
    lookup: Annotated[str | None, Meta(description="Ask for a lookup of this kind.")] = None
    opt_out: Annotated[Text | None, Meta(
        description="Opt the sender out; the text is the one confirmation they get.")] = None
    opt_in: Annotated[Text | None, Meta(
        description="Opt the sender back in; the text is the confirmation.")] = None
    say: Say | None = None
    goto: StateName | None = None
    return_: Annotated[bool, Meta(
        description="Go back to the state a global handler interrupted (or stay here).")
                       ] = msgspec.field(default=False, name="return")
    stay: Annotated[bool, Meta(description="Stay in this state, waiting.")] = False


class Global(Reply, forbid_unknown_fields=True, omit_defaults=True):
    """A handler tried in every state, before the state's own `expect`."""

    name: Annotated[str, Meta(description="Names the handler (stats, skip_globals).")] = ""
    priority: Annotated[int, Meta(description="Higher runs first; ties keep file order.")] = 0
    while_handed_off: Annotated[bool, Meta(
        description="Also tried while a person has the conversation (opt-out and opt-in "
                    "handlers always are), e.g. to raise a hand-off to urgent.")] = False


class AnswerReply(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What an entry of `on_lookup` or `on_webhook` does: actions, and where to go."""

    otherwise: bool = False
    if_: Conditions | None = msgspec.field(default=None, name="if")
    set: Vars | None = None
    tag: Names | None = None
    say: Say | None = None
    goto: StateName | None = None
    stay: bool = False


class LookupReply(AnswerReply, forbid_unknown_fields=True, omit_defaults=True):
    """One entry of `on_lookup`: which lookup answers it takes, actions, and where to go."""

    kind: str | None = None
    ok: bool | None = None
    field: Annotated[str | None, Meta(
        description="The answer must have this field, not empty.")] = None


class WebhookCall(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """POST chosen variables to a webhook of the config; the answer comes to `on_webhook`."""

    call: Annotated[str, Meta(description="The webhook's name: a [webhooks.NAME] of the "
                                          "config.")]
    send: Annotated[list[str], Meta(description=(
        "The variables to send (his_name, city.name, ...); nothing else of the conversation "
        "is sent, never the person's number."))] = []


class WebhookReply(AnswerReply, forbid_unknown_fields=True, omit_defaults=True):
    """One entry of `on_webhook`: which answers it takes, actions, and where to go."""

    ok: Annotated[bool | None, Meta(description="true: a 2xx reply; false: any failure.")
                  ] = None
    error: Annotated[Literal["timeout", "failed", "refused"] | None, Meta(
        description="The failure: timeout, failed (an error reply or no connection) or "
                    "refused (the rules in [webhooks] refused the call or its reply).")] = None
    field: Annotated[str | None, Meta(
        description="The JSON reply has this field, not empty.")] = None


class Timeout(msgspec.Struct, forbid_unknown_fields=True):
    """Where to go when the other side has not replied for `after` (e.g. "20m")."""

    after: Duration
    goto: StateName


class Expire(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """End the conversation (outcome "expired") after this long without a reply."""

    after: Duration
    goto: Annotated[StateName | None, Meta(
        description="A state to enter instead of ending at once.")] = None


class Busy(msgspec.Struct, forbid_unknown_fields=True):
    """Now and then, answer after a longer pause ("busy"): with this chance, min..max extra."""

    chance: Annotated[float, Meta(ge=0, le=1)]
    min: Duration
    max: Duration


class Visits(msgspec.Struct, forbid_unknown_fields=True):
    """Enter a state at most `max` times; the next time, go to `goto` instead."""

    max: Annotated[int, Meta(ge=1)]
    goto: StateName


class Branch(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    goto: StateName
    weight: Annotated[float, Meta(gt=0)] = 1.0
    name: Annotated[str | None, Meta(description="Recorded name (default: the goto).")] = None


class Split(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A random branch, weighted; the choice is recorded in a variable and as a tag."""

    record: Annotated[str, Meta(description="Variable (and tag prefix) for the branch.")]
    branches: list[Branch]
    experiment: Annotated[str | None, Meta(
        description="Declares the split an experiment of this name: `intercept report "
                    "--experiment NAME` compares its branches.")] = None


class HandOff(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Give the conversation to a person; the bot is silent until an operator resumes it."""

    resume: Annotated[StateName, Meta(description="Where the bot picks up when resumed.")]
    reason: str = ""
    priority: Annotated[Literal["normal", "urgent"], Meta(
        description="urgent: the advocates' queue puts it first and alerts at once.")] = "normal"


class State(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A state: actions on entering, then exactly one of expect, goto, if, split, handoff,
    end."""

    say: Say | None = None
    set: Vars | None = None
    tag: Names | None = None
    lookup: str | None = None
    opt_out: Text | None = None
    opt_in: Text | None = None
    expect: list[Reply] | None = None
    timeout: Timeout | None = None
    on_lookup: list[LookupReply] | None = None
    goto: StateName | None = None
    if_: Conditions | None = msgspec.field(default=None, name="if")
    then: StateName | None = None
    else_: StateName | None = msgspec.field(default=None, name="else")
    split: Split | None = None
    handoff: HandOff | None = None
    end: Annotated[str | None, Meta(description="End with this outcome.")] = None
    merge: Duration | None = None
    delay: Annotated[float, Meta(ge=0, description="Scale of the human-like typing delay "
                                                   "here (1 = normal, 0 = none).")] | None = None
    busy: Busy | None = None
    visits: Visits | None = None
    skip_globals: Annotated[Names | None, Meta(
        description="Global handlers not tried in this state ('all' for none).")] = None
    webhook: Annotated[WebhookCall | None, Meta(
        description="Call a webhook of the config with chosen variables (the state must "
                    "wait: `expect`).")] = None
    on_webhook: Annotated[list[WebhookReply] | None, Meta(
        description="What the webhook's answer does, first entry that takes it.")] = None


class LanguageSettings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """How a conversation's language is chosen from the person's first texts."""

    detect: Annotated[bool, Meta(
        description="Identify the language of the person's first texts (only when the "
                    "scenario declares more than one language).")] = True
    texts: Annotated[int, Meta(ge=1, le=10, description=(
        "How many of the person's first texts may decide the language; after them it "
        "stays."))] = 3
    confidence: Annotated[float, Meta(ge=0.5, le=1, description=(
        "Switch only when the identification is at least this sure (0.5-1).")
                                      )] = 0.65


class Settings(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Scenario-wide defaults; a state's own merge/delay/busy/visits override them."""

    merge: Annotated[Duration | None, Meta(
        description="Wait this long after a reply for more fragments, then answer them as "
                    "one.")] = None
    delay: Annotated[float, Meta(
        ge=0, description="Scale of the human-like typing delay (1 = normal).")] | None = None
    busy: Busy | None = None
    expire: Expire | None = None
    visits: Visits | None = None
    language: LanguageSettings | None = None


class Scenario(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A scenario file. A file only included by others may leave out name, version, start."""

    name: Annotated[str | None, Meta(
        description="The scenario's name; a number's `scenario` in the config names it.")] = None
    version: Annotated[int | None, Meta(
        description="Bump it on every change: running conversations keep the version they "
                    "started on.")] = None
    start: Annotated[StateName | None, Meta(
        description="The state a new conversation enters.")] = None
    description: Annotated[str, Meta(description="Free text for people.")] = ""
    languages: Annotated[list[LanguageCode] | None, Meta(description=(
        "The languages the scenario speaks; the first is the default. Messages and intents "
        "may then be given per language. Absent: English only."))] = None
    include: Annotated[list[str] | None, Meta(
        description="Files (relative to this one) whose intents, globals, states and settings "
                    "this file uses; its own definitions win.")] = None
    settings: Settings | None = None
    intents: Annotated[dict[str, list[IntentPattern] | dict[str, list[IntentPattern]]] | None,
                       Meta(description="Named ways of saying something, used with `intent: "
                                        "<name>`; a plain string is a keyword. Per language: "
                                        "a mapping of language code to the patterns.")] = None
    globals: Annotated[list[Global] | None, Meta(
        description="Handlers tried in every state before its own `expect`.")] = None
    states: Annotated[dict[str, State] | None, Meta(
        description="The states, by name.")] = None
