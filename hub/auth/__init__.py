"""Identities, credentials and access rules, independent of any broker.

The embedded broker (hub/broker/) enforces these through amqtt plugins; `hub
mosquitto-config` writes the same rules for Mosquitto; the state service asks the user
store for a sender's role.
"""

from hub.auth.acl import Acl, Identity
from hub.auth.errors import (
    AuthError,
    SeatError,
    SessionLimitError,
    UserExistsError,
    UserNotFoundError,
)
from hub.auth.gate import LoginGate, TooManyAttemptsError
from hub.auth.joincodes import JoinCodes, JoinCodeStore
from hub.auth.ratelimit import RateLimiter
from hub.auth.roles import Role
from hub.auth.sessions import (
    EndReason,
    NewSession,
    PlayerSession,
    SessionEnded,
    SessionListener,
    Sessions,
    SessionStore,
)
from hub.auth.throttle import LoginThrottle
from hub.auth.users import SERVICE_USER, User, Users, UserStore
from hub.auth.verifier import PasswordVerifier, VerifierBusyError

__all__ = [
    "SERVICE_USER",
    "Acl",
    "AuthError",
    "EndReason",
    "Identity",
    "JoinCodeStore",
    "JoinCodes",
    "LoginGate",
    "LoginThrottle",
    "NewSession",
    "PasswordVerifier",
    "PlayerSession",
    "RateLimiter",
    "Role",
    "SeatError",
    "SessionEnded",
    "SessionLimitError",
    "SessionListener",
    "SessionStore",
    "Sessions",
    "TooManyAttemptsError",
    "User",
    "UserExistsError",
    "UserNotFoundError",
    "UserStore",
    "Users",
    "VerifierBusyError",
]
