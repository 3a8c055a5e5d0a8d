"""The trio side of conversations: actors, the router that supervises them, the sender, and the
pure turn (`take_turn`) that decides what a conversation's ready events become."""

from .actor import ActorHandle, ConversationActor, Inbound
from .clock import WallClock
from .delays import DelayModel
from .router import Router
from .sender import Sender
from .services import Services
from .turn import Turn, TurnInput, TurnRules, take_turn

__all__ = ["ActorHandle", "ConversationActor", "DelayModel", "Inbound", "Router", "Sender",
           "Services", "Turn", "TurnInput", "TurnRules", "WallClock", "take_turn"]
