"""vinom's built-in authenticators as Twisted plugins providing
`vinom.accounts.plugins.IAuthenticatorPlugin` (`twistd vinom --auth NAME`)."""

from vinom.accounts.device import make_device
from vinom.accounts.guest import make_guest
from vinom.accounts.oidc import check_jwt, make_jwt
from vinom.accounts.plugins import AuthenticatorPlugin
from vinom.accounts.signed import check_signed, make_signed

guest = AuthenticatorPlugin(
    "guest", "players are anonymous: any name, a fresh player id each time (--auth guest)",
    make_guest,
)
jwt = AuthenticatorPlugin(
    "jwt", "players sign in with a JWT from the identity provider (--auth jwt)",
    make_jwt, check_jwt,
)
signed = AuthenticatorPlugin(
    "signed", "players sign in with a token the studio's backend signs (--auth signed)",
    make_signed, check_signed,
)
device = AuthenticatorPlugin(
    "device", "players sign in with a device id and secret; accounts are made on first use "
    "(--auth device)",
    make_device, needs_store=True,
)
