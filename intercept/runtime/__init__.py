"""The trio side of conversations: actors, the router that supervises them, the sender."""

from .actor import ActorHandle, ConversationActor, Inbound
from .clock import WallClock
from .delays import DelayModel
from .router import Router
from .sender import Sender

__all__ = ["ActorHandle", "ConversationActor", "DelayModel", "Inbound", "Router", "Sender",
           "WallClock"]
