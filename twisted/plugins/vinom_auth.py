"""vinom's built-in authenticators as Twisted plugins providing
`vinom.accounts.plugins.IAuthenticatorPlugin` (`twistd vinom --auth NAME`), each naming
its functions, imported when the server chooses it."""

from vinom.accounts.plugins import AuthenticatorPlugin

guest = AuthenticatorPlugin(
    "guest", "players are anonymous: any name, a fresh player id each time (--auth guest)",
    "vinom.accounts.guest.make_guest",
)
jwt = AuthenticatorPlugin(
    "jwt", "players sign in with a JWT from the identity provider (--auth jwt)",
    "vinom.accounts.oidc.make_jwt", "vinom.accounts.oidc.check_jwt",
)
signed = AuthenticatorPlugin(
    "signed", "players sign in with a token the studio's backend signs (--auth signed)",
    "vinom.accounts.signed.make_signed", "vinom.accounts.signed.check_signed",
)
device = AuthenticatorPlugin(
    "device", "players sign in with a device id and secret; accounts are made on first use "
    "(--auth device)",
    "vinom.accounts.device.make_device", needs_store=True,
)
