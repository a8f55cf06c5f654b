"""The cases: each one edit of the contracts (sometimes in two places, as one change needs),
labelled before it was ever run.

The label is the answer from the standpoint of an existing client or consumer, deployed
before the change: `breaking` when some instance, answer or event it was built for is no
longer what it gets (or a request it sends is refused), and `consumers` names whom the gate
must name: the internal services (from their pacts and AsyncAPI documents), or
`clients without a pact` for an HTTP operation only outside clients call.

Event payload edits bump the event's `x-schema-version` by a minor version (`bump`), so that
the verdict is about the change itself; `schemaVersion` cases bump it on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

USER: Final = "user-service"
NOTIFICATION: Final = "notification-service"
GATEWAY: Final = "gateway-service"
NO_PACT: Final = "clients without a pact"

AUTH_HTTP: Final = "contracts/openapi/auth-service.yaml"
USER_HTTP: Final = "contracts/openapi/user-service.yaml"
NOTIFICATION_HTTP: Final = "contracts/openapi/notification-service.yaml"
EVENTS: Final = "contracts/asyncapi/user-events.yaml"
AUTH_EVENTS: Final = "contracts/asyncapi/auth-service.yaml"
USER_EVENTS: Final = "contracts/asyncapi/user-service.yaml"
NOTIFICATION_EVENTS: Final = "contracts/asyncapi/notification-service.yaml"

# user.created's receivers, and so on (contracts/asyncapi/*-service.yaml).
CREATED: Final = (USER,)
VERIFICATION: Final = (NOTIFICATION,)
RESET: Final = (NOTIFICATION,)
DEACTIVATED: Final = (NOTIFICATION, USER)
# getUserRoles and getJwks: the clients of the user, notification and gateway services (the
# kit's auth client).
ROLES: Final = (GATEWAY, NOTIFICATION, USER)


@dataclass(frozen=True)
class Case:
    """One change: `edits` are (file, old text, new text), each old text occurring once."""

    name: str
    edits: tuple[tuple[str, str, str], ...]
    breaking: bool
    consumers: tuple[str, ...] = ()
    bump: tuple[str, str] | None = None  # (event type, new x-schema-version)


def one(name: str, file: str, old: str, new: str, breaking: bool, *consumers: str) -> Case:
    return Case(name, ((file, old, new),), breaking, tuple(sorted(consumers)))


def event(
    name: str, old: str, new: str, breaking: bool, consumers: tuple[str, ...], event_type: str
) -> Case:
    """An edit of one event's payload in user-events.yaml, with a minor version bump."""
    return Case(
        name, ((EVENTS, old, new),), breaking, tuple(sorted(consumers)), (event_type, "1.1.0")
    )


UC_PROPERTIES: Final = (
    "          const: user.created\n"
    "        schemaVersion:\n"
    "          $ref: '#/components/schemas/SchemaVersion'\n"
    "        sequence:\n"
    "          $ref: '#/components/schemas/Sequence'\n"
    "        userId:\n"
    "          $ref: '#/components/schemas/UserId'\n"
    "        email:\n"
    "          $ref: '#/components/schemas/Email'\n"
)
UC_REQUIRED: Final = (
    "      description: Payload of `user.created`.\n"
    "      required: [eventId, eventType, schemaVersion, sequence, userId, email, timestamp, "
    "source]\n"
)
UD_SEQUENCE: Final = (
    "          const: user.deactivated\n"
    "        schemaVersion:\n"
    "          $ref: '#/components/schemas/SchemaVersion'\n"
    "        sequence:\n"
    "          $ref: '#/components/schemas/Sequence'\n"
)
UD_TIMESTAMP: Final = UD_SEQUENCE + (
    "        userId:\n"
    "          $ref: '#/components/schemas/UserId'\n"
    "        email:\n"
    "          $ref: '#/components/schemas/Email'\n"
    "        timestamp:\n"
    "          $ref: '#/components/schemas/Timestamp'\n"
    "        source:\n"
    "          $ref: '#/components/schemas/Source'\n"
)
UD_PAYLOAD: Final = (
    "    UserDeactivatedPayload:\n"
    "      type: object\n"
    "      title: UserDeactivated\n"
    "      x-schema-version: 1.0.0\n"
    "      description: Payload of `user.deactivated`.\n"
)
VT: Final = "        verificationToken:\n          type: string\n          minLength: 16\n"
VT_MAX: Final = VT + "          maxLength: 256\n"
RT: Final = (
    "        resetToken:\n          type: string\n          minLength: 16\n"
    "          maxLength: 256\n"
)
VER_EXPIRES: Final = (
    "      required: [eventId, eventType, schemaVersion, sequence, userId, email, "
    "verificationToken, expiresAt, timestamp, source]\n"
)
RESET_EXPIRES: Final = (
    "          description: Single-use token to put in the reset link; only its hash is stored.\n"
    "        expiresAt:\n"
    "          type: string\n"
    "          format: date-time\n"
)
ATTRIBUTES: Final = "      required: [eventType, source, schemaVersion]\n"
TRACEPARENT_PATTERN: Final = (
    "          pattern: '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'\n"
)
TRACEPARENT: Final = "        traceparent:\n          type: string\n"

NOTIFICATION_FILTER: Final = (
    "              eventType:\n"
    "                - user.email.verification.requested\n"
    "                - user.password.reset.requested\n"
    "                - user.deactivated\n"
)
USER_FILTER: Final = "              eventType: [user.created, user.deactivated]\n"
USER_SUBSCRIPTION: Final = (
    "      sns:\n"
    "        consumers:\n"
    "          - protocol: sqs\n"
    "            endpoint:\n"
    "              name: accord-user-service\n"
    "            filterPolicy:\n"
    "              eventType: [user.created, user.deactivated]\n"
    "            filterPolicyScope: MessageAttributes\n"
    "            rawMessageDelivery: true\n"
    "        bindingVersion: 0.1.0\n"
)
SEND_DEACTIVATED: Final = (
    "  sendUserDeactivated:\n"
    "    action: send\n"
    "    title: Publish user.deactivated\n"
    "    summary: When a user deactivates their account or an admin deactivates it.\n"
    "    channel:\n"
    "      $ref: '#/channels/userEvents'\n"
    "    messages:\n"
    "      - $ref: '#/channels/userEvents/messages/UserDeactivated'\n"
)

USER_ROLES: Final = (
    "      required: [userId, roles]\n"
    "      properties:\n"
    "        userId:\n"
    "          $ref: '#/components/schemas/UserId'\n"
    "        roles:\n"
    "          type: array\n"
    "          items:\n"
    "            $ref: '#/components/schemas/Role'\n"
    "          uniqueItems: true\n"
    "    SetUserRolesRequest:\n"
)
ROLES_404: Final = (
    "          description: The caller's account does not hold the `admin` role now.\n"
    "        '404':\n"
    "          $ref: '#/components/responses/NotFound'\n"
    "        '422':\n"
    "          $ref: '#/components/responses/UnprocessableContent'\n"
    "          description: The `userId` in the path is not a UUID.\n"
    "        '503':\n"
    "          $ref: '#/components/responses/ServiceUnavailable'\n"
    "    put:\n"
)
ROLES_SECURITY: Final = (
    "      tags: [users]\n"
    "      security:\n"
    "        - bearerAuth: [admin]\n"
    "        - serviceApiKey: []\n"
)
JWKS_HEADERS: Final = (
    "          description: The current key set.\n"
    "          headers:\n"
    "            Cache-Control:\n"
    "              $ref: '#/components/headers/CacheControl'\n"
)
CACHE_CONTROL: Final = (
    "      description: How long the key set may be cached.\n      required: true\n"
)
LOCATION_HEADER: Final = (
    "          headers:\n"
    "            Location:\n"
    "              $ref: '#/components/headers/Location'\n"
)
LOCATION: Final = "      description: The URL of the created resource.\n      required: true\n"
CONFIRM_VERIFICATION_401: Final = (
    "          description: The email address is verified.\n"
    "        '400':\n"
    "          $ref: '#/components/responses/BadRequest'\n"
    "        '401':\n"
    "          $ref: '#/components/responses/InvalidToken'\n"
)
CONFIRM_RESET_401: Final = (
    "          description: The password is changed; all the user's refresh tokens are revoked.\n"
    "        '400':\n"
    "          $ref: '#/components/responses/BadRequest'\n"
    "        '401':\n"
    "          $ref: '#/components/responses/InvalidToken'\n"
)
LOGIN_200: Final = "        '200':\n          description: The caller is logged in.\n"
ME: Final = "  /api/v1/auth/me:\n    get:\n      operationId: getCurrentAccount\n"
ME_CONTENT: Final = (
    "          description: The account named by the token's `sub`.\n"
    "          content:\n"
    "            application/json:\n"
)
LOGIN_PASSWORD: Final = (
    "          minLength: 1\n          maxLength: 128\n          description: |\n"
    "            The account's password."
)
REGISTER: Final = (
    "      description: The body of `registerUser`.\n"
    "      additionalProperties: false\n"
    "      required: [email, password]\n"
    "      properties:\n"
)
ACCOUNT_REQUIRED: Final = "      required: [id, email, emailVerified, roles, status, createdAt]\n"
ROLE_ENUM: Final = "      enum: [user, admin]\n      description: 'A role:"
ALGORITHM_ENUM: Final = "      enum: [EdDSA, RS256]\n"
KEY_TYPE_ENUM: Final = "      enum: [OKP, RSA]\n"
EXPIRES_IN: Final = (
    "          type: integer\n          minimum: 1\n          description: Seconds until"
)
DEACTIVATE_SECURITY: Final = (
    "      tags: [users]\n"
    "      security:\n"
    "        - bearerAuth: [admin]\n"
    "      x-owner-parameter: userId\n"
    "      responses:\n"
    "        '204':\n"
    "          description: The account is deactivated.\n"
)
JWKS_PATH: Final = "  /.well-known/jwks.json:\n    get:\n      operationId: getJwks\n"
ROLES_GET: Final = "    get:\n      operationId: getUserRoles\n"
PROFILE_STATUS: Final = (
    "      enum: [active, deactivated]\n      description: '`deactivated` profiles"
)
DISPLAY_NAME: Final = (
    "      required: [id, email, displayName, firstName, lastName, phone, status, createdAt, "
    "updatedAt]\n"
)
PROFILE_PHONE: Final = (
    "          examples: [Lovelace]\n"
    "        phone:\n"
    "          type: [string, 'null']\n"
    "          pattern: '^\\+[1-9][0-9]{6,14}$'\n"
    "          description: A phone number in E.164 form.\n"
    "          examples: ['+447700900123']\n"
    "        status:\n"
)
LIMIT: Final = "        minimum: 1\n        maximum: 100\n        default: 20\n"
CREATE_ADDRESS: Final = (
    "      description: The body of `createAddress`.\n"
    "      additionalProperties: false\n"
    "      required: [label, line1, city, postalCode, country]\n"
    "      properties:\n"
)
CREATE_ADDRESS_OWNER: Final = "      operationId: createAddress\n      summary: Add an address\n"
NOTIFICATIONS_TYPE: Final = (
    "        - name: type\n"
    "          in: query\n"
    "          required: false\n"
    "          description: Only the notifications of this type.\n"
)
NOTIFICATIONS_PATH: Final = (
    "  /api/v1/notifications:\n    get:\n      operationId: listNotifications\n"
)

CASES: Final[tuple[Case, ...]] = (
    # --- HTTP: response bodies (an existing client reads new answers) -----------------------
    one(
        "roles-response-property-removed",
        AUTH_HTTP,
        USER_ROLES,
        USER_ROLES.replace("[userId, roles]", "[userId]").replace(
            "        roles:\n          type: array\n          items:\n"
            "            $ref: '#/components/schemas/Role'\n          uniqueItems: true\n",
            "",
        ),
        True,
        NO_PACT,
        *ROLES,
    ),
    one(
        "roles-response-property-added",
        AUTH_HTTP,
        USER_ROLES,
        USER_ROLES.replace(
            "    SetUserRolesRequest:\n",
            "        grantedAt:\n          type: string\n    SetUserRolesRequest:\n",
        ),
        False,
    ),
    one(
        "role-enum-value-added",
        AUTH_HTTP,
        ROLE_ENUM,
        ROLE_ENUM.replace("[user, admin]", "[user, admin, auditor]"),
        True,
        NO_PACT,
        *ROLES,
    ),
    one(
        "jwk-algorithm-value-added",
        AUTH_HTTP,
        ALGORITHM_ENUM,
        "      enum: [EdDSA, RS256, ES256]\n",
        True,
        *ROLES,
    ),
    one("jwk-key-type-value-removed", AUTH_HTTP, KEY_TYPE_ENUM, "      enum: [OKP]\n", False),
    one(
        "token-expiry-minimum-relaxed",
        AUTH_HTTP,
        EXPIRES_IN,
        EXPIRES_IN.replace("minimum: 1", "minimum: 0"),
        True,
        NO_PACT,
    ),
    one(
        "account-property-made-optional",
        AUTH_HTTP,
        ACCOUNT_REQUIRED,
        "      required: [id, email, roles, status, createdAt]\n",
        True,
        GATEWAY,  # its pact reads it
    ),
    one(
        "profile-status-value-added",
        USER_HTTP,
        PROFILE_STATUS,
        PROFILE_STATUS.replace("[active, deactivated]", "[active, deactivated, suspended]"),
        True,
        NO_PACT,  # listUsers, an admin's
        GATEWAY,  # getUserProfile, in its pact
    ),
    # Replaced before the final run: the first version of this case made `phone` non-nullable,
    # which left an example with `phone: null` in the contract (lint rightly refused it).
    one(
        "profile-last-name-max-lowered",
        USER_HTTP,
        PROFILE_PHONE,
        PROFILE_PHONE.replace(
            "          examples: [Lovelace]\n",
            "          maxLength: 50\n          examples: [Lovelace]\n",
        ),
        False,
    ),
    one(
        "profile-property-added",
        USER_HTTP,
        PROFILE_PHONE,
        PROFILE_PHONE.replace(
            "        status:\n",
            "        nickname:\n          type: [string, 'null']\n        status:\n",
        ),
        False,
    ),
    one(
        "profile-display-name-made-optional",
        USER_HTTP,
        DISPLAY_NAME,
        DISPLAY_NAME.replace("displayName, ", ""),
        True,
        NO_PACT,  # listUsers, an admin's
        GATEWAY,  # getUserProfile, in its pact
    ),
    # --- HTTP: response headers -------------------------------------------------------------
    one("location-header-removed", USER_HTTP, LOCATION_HEADER, "", True, NO_PACT),
    one(
        "location-header-optional",
        USER_HTTP,
        LOCATION,
        LOCATION.replace("required: true", "required: false"),
        True,
        NO_PACT,
    ),
    one(
        "cache-control-header-removed",
        AUTH_HTTP,
        JWKS_HEADERS,
        "          description: The current key set.\n",
        True,
        *ROLES,
    ),
    one(
        "cache-control-header-optional",
        AUTH_HTTP,
        CACHE_CONTROL,
        CACHE_CONTROL.replace("required: true", "required: false"),
        True,
        *ROLES,
    ),
    one(
        "response-header-added",
        AUTH_HTTP,
        JWKS_HEADERS,
        JWKS_HEADERS + "            ETag:\n              schema:\n                type: string\n",
        False,
    ),
    one(
        "location-header-format-dropped",
        USER_HTTP,
        "        type: string\n        format: uri-reference\n",
        "        type: string\n",
        True,
        NO_PACT,
    ),
    # --- HTTP: statuses ---------------------------------------------------------------------
    one(
        "roles-404-removed",
        AUTH_HTTP,
        ROLES_404,
        ROLES_404.replace(
            "        '404':\n          $ref: '#/components/responses/NotFound'\n", ""
        ),
        True,
        *ROLES,
    ),
    one(
        "roles-429-added",
        AUTH_HTTP,
        ROLES_404,
        ROLES_404.replace(
            "    put:\n",
            "        '429':\n          $ref: '#/components/responses/TooManyRequests'\n    put:\n",
        ),
        False,
    ),
    one(
        "invalid-verification-token-401-to-400",
        AUTH_HTTP,
        CONFIRM_VERIFICATION_401,
        CONFIRM_VERIFICATION_401.replace(
            "        '401':\n          $ref: '#/components/responses/InvalidToken'\n", ""
        ),
        True,
        NO_PACT,
    ),
    one(
        "invalid-reset-token-401-to-400",
        AUTH_HTTP,
        CONFIRM_RESET_401,
        CONFIRM_RESET_401.replace(
            "        '401':\n          $ref: '#/components/responses/InvalidToken'\n", ""
        ),
        True,
        NO_PACT,
    ),
    one(
        "login-success-200-to-201",
        AUTH_HTTP,
        LOGIN_200,
        "        '201':\n          description: The caller is logged in.\n",
        True,
        NO_PACT,
    ),
    one(
        "me-media-type-changed",
        AUTH_HTTP,
        ME_CONTENT,
        ME_CONTENT.replace("application/json", "application/vnd.accord+json"),
        True,
        GATEWAY,  # its pact reads it
    ),
    # --- HTTP: operations, parameters, requests, security -----------------------------------
    one(
        "jwks-operation-removed",
        AUTH_HTTP,
        JWKS_PATH,
        "  /.well-known/jwks-old.json:\n    get:\n      operationId: getJwks\n",
        True,
        *ROLES,
    ),
    one(
        "me-path-renamed",
        AUTH_HTTP,
        ME,
        "  /api/v1/auth/account:\n    get:\n      operationId: getCurrentAccount\n",
        True,
        GATEWAY,  # its pact reads it
    ),
    one(
        "operation-added",
        AUTH_HTTP,
        JWKS_PATH,
        "  /api/v1/auth/ping:\n    get:\n      operationId: ping\n      summary: Ping\n"
        "      security: []\n      responses:\n        '204':\n          description: Pong.\n"
        + JWKS_PATH,
        False,
    ),
    one(
        "roles-required-query-parameter-added",
        AUTH_HTTP,
        ROLES_GET,
        ROLES_GET + "      parameters:\n        - name: view\n          in: query\n"
        "          required: true\n          schema:\n            type: string\n",
        True,
        *ROLES,
    ),
    one(
        "roles-optional-query-parameter-added",
        AUTH_HTTP,
        ROLES_GET,
        ROLES_GET + "      parameters:\n        - name: view\n          in: query\n"
        "          required: false\n          schema:\n            type: string\n",
        False,
    ),
    one(
        "roles-service-key-dropped",
        AUTH_HTTP,
        ROLES_SECURITY,
        "      tags: [users]\n      security:\n        - bearerAuth: [admin]\n",
        True,
        *ROLES,
    ),
    one(
        "deactivate-service-key-allowed",
        AUTH_HTTP,
        DEACTIVATE_SECURITY,
        DEACTIVATE_SECURITY.replace(
            "        - bearerAuth: [admin]\n",
            "        - bearerAuth: [admin]\n        - serviceApiKey: []\n",
        ),
        False,
    ),
    one(
        "deactivate-owner-dropped",
        AUTH_HTTP,
        DEACTIVATE_SECURITY,
        DEACTIVATE_SECURITY.replace("      x-owner-parameter: userId\n", ""),
        True,
        NO_PACT,
    ),
    one(
        "login-password-max-tightened",
        AUTH_HTTP,
        LOGIN_PASSWORD,
        LOGIN_PASSWORD.replace("maxLength: 128", "maxLength: 64"),
        True,
        NO_PACT,
    ),
    one(
        "login-password-max-relaxed",
        AUTH_HTTP,
        LOGIN_PASSWORD,
        LOGIN_PASSWORD.replace("maxLength: 128", "maxLength: 256"),
        False,
    ),
    one(
        "register-required-property-added",
        AUTH_HTTP,
        REGISTER,
        REGISTER.replace("[email, password]", "[email, password, displayName]").replace(
            "      properties:\n",
            "      properties:\n        displayName:\n          type: string\n",
        ),
        True,
        NO_PACT,
    ),
    one(
        "address-optional-request-property-added",
        USER_HTTP,
        CREATE_ADDRESS,
        CREATE_ADDRESS + "        note:\n          type: string\n",
        False,
    ),
    one("limit-maximum-lowered", USER_HTTP, LIMIT, LIMIT.replace("100", "50"), True, NO_PACT),
    one("limit-maximum-raised", USER_HTTP, LIMIT, LIMIT.replace("100", "500"), False),
    one(
        "operation-description-changed",
        USER_HTTP,
        CREATE_ADDRESS_OWNER,
        "      operationId: createAddress\n      summary: Add a postal address\n",
        False,
    ),
    one(
        "notifications-type-filter-required",
        NOTIFICATION_HTTP,
        NOTIFICATIONS_TYPE,
        NOTIFICATIONS_TYPE.replace("required: false", "required: true"),
        True,
        NO_PACT,
    ),
    one(
        "notifications-operation-removed",
        NOTIFICATION_HTTP,
        NOTIFICATIONS_PATH,
        "  /api/v1/notification-log:\n    get:\n      operationId: listNotifications\n",
        True,
        NO_PACT,
    ),
    # --- events: payloads (existing consumers read new events; upgraded ones read queued old
    # events and redriven dead letters) ------------------------------------------------------
    event(
        "created-optional-property-added",
        UC_PROPERTIES,
        UC_PROPERTIES + "        locale:\n          type: string\n",
        False,
        (),
        "user.created",
    ),
    Case(
        "created-required-property-added",
        (
            (EVENTS, UC_PROPERTIES, UC_PROPERTIES + "        locale:\n          type: string\n"),
            (EVENTS, UC_REQUIRED, UC_REQUIRED.replace("source]", "source, locale]")),
        ),
        True,
        CREATED,
        ("user.created", "1.1.0"),
    ),
    Case(
        "created-property-removed",
        (
            (
                EVENTS,
                UC_PROPERTIES,
                UC_PROPERTIES.replace(
                    "        email:\n          $ref: '#/components/schemas/Email'\n", ""
                ),
            ),
            (EVENTS, UC_REQUIRED, UC_REQUIRED.replace("email, ", "")),
        ),
        True,
        CREATED,
        ("user.created", "1.1.0"),
    ),
    event(
        "created-property-made-optional",
        UC_REQUIRED,
        UC_REQUIRED.replace("email, ", ""),
        True,
        CREATED,
        "user.created",
    ),
    event(
        "created-event-type-const-widened",
        UC_PROPERTIES,
        UC_PROPERTIES.replace(
            "          const: user.created\n", "          enum: [user.created, user.registered]\n"
        ),
        True,
        CREATED,
        "user.created",
    ),
    event(
        "deactivated-sequence-minimum-relaxed",
        UD_SEQUENCE,
        UD_SEQUENCE.replace(
            "          $ref: '#/components/schemas/Sequence'\n",
            "          type: integer\n          minimum: 0\n",
        ),
        True,
        DEACTIVATED,
        "user.deactivated",
    ),
    event(
        "deactivated-sequence-minimum-tightened",
        UD_SEQUENCE,
        UD_SEQUENCE.replace(
            "          $ref: '#/components/schemas/Sequence'\n",
            "          type: integer\n          minimum: 2\n",
        ),
        True,
        DEACTIVATED,
        "user.deactivated",
    ),
    event(
        "deactivated-sequence-widened-to-number",
        UD_SEQUENCE,
        UD_SEQUENCE.replace(
            "          $ref: '#/components/schemas/Sequence'\n",
            "          type: number\n          minimum: 1\n",
        ),
        True,
        DEACTIVATED,
        "user.deactivated",
    ),
    event(
        "deactivated-schema-version-string-to-integer",
        UD_SEQUENCE,
        UD_SEQUENCE.replace(
            "          $ref: '#/components/schemas/SchemaVersion'\n", "          type: integer\n"
        ),
        True,
        DEACTIVATED,
        "user.deactivated",
    ),
    event(
        "deactivated-timestamp-format-changed",
        UD_TIMESTAMP,
        UD_TIMESTAMP.replace(
            "          $ref: '#/components/schemas/Timestamp'\n",
            "          type: string\n          format: date\n",
        ),
        True,
        DEACTIVATED,
        "user.deactivated",
    ),
    event(
        "deactivated-timestamp-same-inlined",
        UD_TIMESTAMP,
        UD_TIMESTAMP.replace(
            "          $ref: '#/components/schemas/Timestamp'\n",
            "          type: string\n          format: date-time\n",
        ),
        False,
        (),
        "user.deactivated",
    ),
    event(
        "verification-token-nullable",
        VT,
        VT.replace("type: string", "type: [string, 'null']"),
        True,
        VERIFICATION,
        "user.email.verification.requested",
    ),
    event(
        "verification-token-max-relaxed",
        VT_MAX,
        VT_MAX.replace("256", "512"),
        True,
        VERIFICATION,
        "user.email.verification.requested",
    ),
    event(
        "verification-token-min-relaxed",
        VT,
        VT.replace("16", "8"),
        True,
        VERIFICATION,
        "user.email.verification.requested",
    ),
    event(
        "verification-expiry-made-optional",
        VER_EXPIRES,
        VER_EXPIRES.replace("expiresAt, ", ""),
        True,
        VERIFICATION,
        "user.email.verification.requested",
    ),
    event(
        "reset-token-max-tightened",
        RT,
        RT.replace("256", "128"),
        True,
        RESET,
        "user.password.reset.requested",
    ),
    event(
        "reset-token-pattern-added",
        RT,
        RT + "          pattern: '^rt_'\n",
        True,
        RESET,
        "user.password.reset.requested",
    ),
    event(
        "reset-expiry-description-changed",
        RESET_EXPIRES,
        RESET_EXPIRES.replace("only its hash is stored", "only a hash of it is stored"),
        False,
        (),
        "user.password.reset.requested",
    ),
    event(
        "reset-payload-refactored-into-all-of",
        RESET_EXPIRES,
        RESET_EXPIRES.replace(
            "          type: string\n          format: date-time\n",
            "          allOf:\n            - $ref: '#/components/schemas/Timestamp'\n",
        ),
        False,
        (),
        "user.password.reset.requested",
    ),
    Case(
        "deactivated-payload-refactored-into-all-of",
        (
            (
                EVENTS,
                UD_PAYLOAD,
                "    UserDeactivatedPayload:\n"
                "      title: UserDeactivated\n"
                "      x-schema-version: 1.1.0\n"
                "      description: Payload of `user.deactivated`.\n"
                "      allOf:\n"
                "        - $ref: '#/components/schemas/UserDeactivatedFields'\n"
                "    UserDeactivatedFields:\n"
                "      type: object\n",
            ),
        ),
        False,
    ),
    # --- events: versions --------------------------------------------------------------------
    Case("created-major-version-alone", (), True, CREATED, ("user.created", "2.0.0")),
    Case("deactivated-major-version-alone", (), True, DEACTIVATED, ("user.deactivated", "2.0.0")),
    Case("created-minor-version-alone", (), False, (), ("user.created", "1.1.0")),
    # --- events: message attributes (headers) -----------------------------------------------
    one(
        "attribute-made-optional",
        EVENTS,
        ATTRIBUTES,
        "      required: [eventType, source]\n",
        True,
        *DEACTIVATED,
    ),
    one("attribute-pattern-dropped", EVENTS, TRACEPARENT_PATTERN, "", True, *DEACTIVATED),
    one(
        "optional-attribute-added",
        EVENTS,
        TRACEPARENT,
        "        correlationId:\n          type: string\n" + TRACEPARENT,
        False,
    ),
    # --- events: subscriptions, filter policies, channels, operations ------------------------
    one(
        "notification-filter-drops-deactivated",
        NOTIFICATION_EVENTS,
        NOTIFICATION_FILTER,
        NOTIFICATION_FILTER.replace("                - user.deactivated\n", ""),
        True,
        NOTIFICATION,
    ),
    one(
        "user-filter-admits-unhandled-event",
        USER_EVENTS,
        USER_FILTER,
        "              eventType: [user.created, user.deactivated,"
        " user.password.reset.requested]\n",
        True,
        USER,
    ),
    one(
        "user-subscription-removed",
        USER_EVENTS,
        USER_SUBSCRIPTION,
        "      sns:\n        bindingVersion: 0.1.0\n",
        True,
        USER,
    ),
    one(
        "user-filter-attribute-renamed",
        USER_EVENTS,
        USER_FILTER,
        "              type: [user.created, user.deactivated]\n",
        True,
        USER,
    ),
    one("sender-stops-sending-deactivated", AUTH_EVENTS, SEND_DEACTIVATED, "", True, *DEACTIVATED),
    one(
        "topic-renamed",
        AUTH_EVENTS,
        "    address: accord-user-events\n",
        "    address: accord-user-events-v2\n",
        True,
        *DEACTIVATED,
    ),
    one(
        "dead-letter-retention-changed",
        USER_EVENTS,
        "            messageRetentionPeriod: 1209600\n",
        "            messageRetentionPeriod: 864000\n",
        False,
    ),
    one(
        "queue-visibility-timeout-changed",
        NOTIFICATION_EVENTS,
        "            visibilityTimeout: 60\n",
        "            visibilityTimeout: 90\n",
        False,
    ),
    one(
        "message-example-changed",
        EVENTS,
        "            sequence: 4\n",
        "            sequence: 5\n",
        False,
    ),
)
