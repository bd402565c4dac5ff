#!/bin/sh
# Installed by the certbot_nginx role: certbot runs this after every renewed certificate.
exec systemctl reload nginx
