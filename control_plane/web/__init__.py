"""Server-rendered web pages: signup, email verification, provisioning progress, dev mailbox."""

from control_plane.web.redaction import install_access_log_redaction
from control_plane.web.routes import router as web_router

install_access_log_redaction()

__all__ = ["web_router"]
