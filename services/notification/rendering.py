"""`EmailComposer` on Jinja2: the templates in `services/notification/templates/`, one
`<type>.txt` and one `<type>.html` per `NotificationType` (the HTML ones extend `layout.html`).

HTML templates are autoescaped (an address or a token can never inject markup); the plain-text
ones are not, since escaping would corrupt them and nothing interprets them as markup. Every
variable must be given (`StrictUndefined`): a typo fails the render, not the email.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.notification.domain import SUBJECTS, NotificationType, OutgoingEmail

TEMPLATES = Path(__file__).resolve().parent / "templates"


class JinjaEmailComposer:
    """Renders each notification's plain-text and HTML templates."""

    def __init__(self, templates: Path = TEMPLATES) -> None:
        self.environment = Environment(
            loader=FileSystemLoader(templates),
            autoescape=select_autoescape(
                enabled_extensions=("html", "htm", "xml"),
                disabled_extensions=("txt",),
                default_for_string=True,
                default=True,
            ),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        # Fail at start-up, not on the first event, if a template is missing or broken.
        for kind in NotificationType:
            self.environment.get_template(f"{kind.value}.txt")
            self.environment.get_template(f"{kind.value}.html")

    def compose(
        self,
        kind: NotificationType,
        *,
        to: str,
        link: str,
        expires_at: datetime,
        reference: str,
    ) -> OutgoingEmail:
        subject = SUBJECTS[kind]
        context = {
            "to": to,
            "link": link,
            "subject": subject,
            "expires_at": expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
        text = self.environment.get_template(f"{kind.value}.txt").render(context)
        html = self.environment.get_template(f"{kind.value}.html").render(context)
        return OutgoingEmail(to=to, subject=subject, text=text, html=html, reference=reference)
