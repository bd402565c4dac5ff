#!/bin/sh
# Installed by the certbot_apache role: certbot runs this after every renewed certificate.
exec systemctl reload apache2
