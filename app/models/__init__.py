"""SQLAlchemy models, one module per aggregate."""
from app.models.audit import AuditLog
from app.models.base import utcnow
from app.models.body import UsageBody
from app.models.group import ModelGroup
from app.models.health import HealthCheck
from app.models.key import GatewayKey
from app.models.model import Model
from app.models.playground import PlaygroundConversation, PlaygroundProfile
from app.models.provider import Provider
from app.models.rollup import UsageRollup
from app.models.state import GatewayState
from app.models.stored_response import StoredResponse
from app.models.team import Team
from app.models.usage import UsageRecord
from app.models.user import User

__all__ = ["AuditLog", "GatewayKey", "HealthCheck", "ModelGroup", "Model", "PlaygroundConversation", "PlaygroundProfile", "Provider", "GatewayState", "StoredResponse", "Team", "UsageBody", "UsageRecord", "UsageRollup", "User",
           "utcnow"]
