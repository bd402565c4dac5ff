#!/bin/sh
# Installed by the certbot_nginx role. Usage: certbot-nginx-validate FILE
# nginx -t for one server-block file (which only makes sense inside http {}): wrap it in a
# minimal nginx.conf and test that. Used as the validate command of the role's templates.
set -u
[ $# -eq 1 ] || { echo "usage: $0 FILE" >&2; exit 2; }
conf=$(mktemp /tmp/certbot-nginx-validate.XXXXXX) || exit 1
trap 'rm -f "$conf"' EXIT HUP INT TERM
cat > "$conf" <<CONF
pid /run/certbot-nginx-validate.pid;
error_log stderr;
events {}
http {
    include /etc/nginx/mime.types;
    include $1;
}
CONF
nginx -t -q -c "$conf"
