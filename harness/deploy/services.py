"""Which service uses which part of the bus, from each service's AsyncAPI application
document: the topics its send operations publish to, the queues its receive operations consume
(the `sqs` endpoints of their `sns` consumers, as `harness/bus/provision.py` subscribes them).
Everything else about a topic or a queue comes from the topology itself."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.authoring.contracts import Resolver
from harness.bus.provision import TopologyError
from harness.project import Project
from services.kit.topology import Topology


@dataclass(frozen=True)
class Service:
    """One service as deployed: its name (its package under `services/`) and its AsyncAPI
    application document (None for a service with no events)."""

    name: str
    asyncapi: Path | None = None


def platform_services(project: Project) -> tuple[Service, ...]:
    """The services a deployment of `project` runs (its `[[tool.accord.service]]` entries)."""
    return tuple(
        Service(
            entry.name,
            project.root / entry.asyncapi if entry.asyncapi is not None else None,
        )
        for entry in project.services
    )


@dataclass(frozen=True)
class ServiceBus:
    """What one service does on the bus: the topics it publishes to and the queues it consumes
    (names as the contracts declare them, without a prefix)."""

    service: str
    publishes: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()


def service_buses(services: tuple[Service, ...], topology: Topology) -> tuple[ServiceBus, ...]:
    """Each service's use of `topology` (the unprefixed one `topology_from_contracts` reads);
    `TopologyError` when a document names a topic or a queue the topology does not have."""
    resolver = Resolver()
    topics = {topic.name for topic in topology.topics}
    queues = {queue.name for queue in topology.queues}
    buses = []
    for service in services:
        if service.asyncapi is None:
            buses.append(ServiceBus(service.name))
            continue
        publishes, consumes = _bus_of(service.asyncapi, resolver)
        for topic in publishes:
            if topic not in topics:
                raise TopologyError(f"{service.name} publishes to undeclared topic {topic!r}")
        for queue in consumes:
            if queue not in queues:
                raise TopologyError(f"{service.name} consumes undeclared queue {queue!r}")
        buses.append(ServiceBus(service.name, publishes, consumes))
    return tuple(buses)


def _bus_of(path: Path, resolver: Resolver) -> tuple[tuple[str, ...], tuple[str, ...]]:
    data = resolver.document(path).data
    if not isinstance(data, dict):
        return (), ()
    channel_topics: dict[str, str] = {}
    for key, channel in (data.get("channels") or {}).items():
        sns = ((channel or {}).get("bindings") or {}).get("sns")
        if sns is not None:
            channel_topics[f"#/channels/{key}"] = sns.get("name") or channel.get("address")
    publishes: list[str] = []
    consumes: list[str] = []
    for operation in (data.get("operations") or {}).values():
        action = (operation or {}).get("action")
        if action == "send":
            topic = channel_topics.get((operation.get("channel") or {}).get("$ref", ""))
            if topic is not None and topic not in publishes:
                publishes.append(topic)
        elif action == "receive":
            bindings = operation.get("bindings") or {}
            for consumer in (bindings.get("sns") or {}).get("consumers") or []:
                queue = (consumer.get("endpoint") or {}).get("name")
                if consumer.get("protocol") == "sqs" and queue and queue not in consumes:
                    consumes.append(queue)
    return tuple(publishes), tuple(consumes)
