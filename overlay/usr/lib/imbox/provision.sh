#!/bin/bash
# Applies the preseed (imbox-provision.service), at every boot, after
# imbox-storage has mounted /data:
#
#   hostname = "imbox"                  the box's name on the LAN (NAME.local)
#   timezone = "Europe/Berlin"          a name under /usr/share/zoneinfo
#   ssh_authorized_keys = ["ssh-ed25519 AAAA... me@laptop"]   turns SSH on
#   [wifi]
#   country = "DE"                      regulatory domain
#   ssid = "Home"
#   psk = "passphrase"
#   [storage]
#   format_blank_usb = true             read by storage.sh
#   [setup]
#   claim_code = "XXXX-XXXX-XXXX-XXXX"  written by image/flash.sh (make flash)
#
# The preseed on the boot partition holds secrets (the Wi-Fi passphrase), so
# it is moved to /data/system/preseed.toml (mode 0600) and deleted from the
# boot partition. A new imbox.toml on the boot partition replaces it.
set -euo pipefail
# shellcheck source=overlay/usr/lib/imbox/lib.sh
. /usr/lib/imbox/lib.sh

mkdir -p "$STATE"
preseed=$(preseed_file)
if [ -z "$preseed" ]; then
    log "no preseed: hostname imbox, UTC, Ethernet only, SSH off"
    exit 0
fi
log "preseed: $preseed"

name=$(toml_get "$preseed" "" hostname)
if [ -n "$name" ]; then
    if [[ $name =~ ^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$ ]]; then
        hostname "$name"
        log "hostname $name (mDNS: $name.local)"
    else
        log "hostname '$name' is not a valid host name; keeping $(hostname)"
    fi
fi

tz=$(toml_get "$preseed" "" timezone)
if [ -n "$tz" ]; then
    if [[ $tz =~ ^[A-Za-z0-9_+/-]+$ ]] && [ -f "/usr/share/zoneinfo/$tz" ]; then
        ln -sfn "/usr/share/zoneinfo/$tz" "$STATE/localtime"
        log "time zone $tz"
    else
        log "unknown time zone '$tz'; keeping UTC"
    fi
fi

keys=$(toml_get "$preseed" "" ssh_authorized_keys)
if [ -n "$keys" ]; then
    install -d -m 0700 "$DATA/system/ssh"
    printf '%s\n' "$keys" > "$DATA/system/ssh/authorized_keys.tmp"
    chmod 0600 "$DATA/system/ssh/authorized_keys.tmp"
    mv "$DATA/system/ssh/authorized_keys.tmp" "$DATA/system/ssh/authorized_keys"
    if [ ! -f "$DATA/system/ssh/ssh_host_ed25519_key" ]; then
        ssh-keygen -q -t ed25519 -N '' -C "imbox" -f "$DATA/system/ssh/ssh_host_ed25519_key"
    fi
    log "SSH on for $(wc -l < "$DATA/system/ssh/authorized_keys") key(s); host key $(ssh-keygen -l -f "$DATA/system/ssh/ssh_host_ed25519_key.pub" | cut -d' ' -f2)"
else
    rm -f "$DATA/system/ssh/authorized_keys"
fi

ssid=$(toml_get "$preseed" wifi ssid)
if [ -n "$ssid" ]; then
    psk=$(toml_get "$preseed" wifi psk)
    country=$(toml_get "$preseed" wifi country)
    conf=$STATE/wpa_supplicant-wlan0.conf
    umask 077
    {
        echo "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev"
        echo "update_config=0"
        [ -z "$country" ] || echo "country=$country"
        if [ -n "$psk" ]; then
            wpa_passphrase "$ssid" "$psk" | grep -v '^[[:space:]]*#psk='
        else
            printf 'network={\n\tssid="%s"\n\tkey_mgmt=NONE\n}\n' "$ssid"
        fi
    } > "$conf.tmp"
    mv "$conf.tmp" "$conf"
    umask 022
    systemctl --no-block start wpa_supplicant@wlan0.service
    log "Wi-Fi: $ssid"
fi

# The claim code image/flash.sh put in the preseed and printed: imboxd
# (setup.preseeded_claim_file) uses it instead of making one while the box
# has no owner, so the code printed when the card was written is the one
# that works. /run is gone at the next boot; the saved preseed writes it
# again, and a claimed box ignores it. imboxd checks the code itself.
claim_code=$(toml_get "$preseed" setup claim_code)
if [ -n "$claim_code" ]; then
    install -m 0640 -g imbox /dev/null "$STATE/claim-code.tmp"
    printf '%s\n' "$claim_code" > "$STATE/claim-code.tmp"
    mv "$STATE/claim-code.tmp" "$STATE/claim-code"
    log "claim code from the preseed handed to imboxd ($STATE/claim-code)"
fi

# Secrets off the boot partition.
if [ "$preseed" = "$BOOTFS/imbox.toml" ]; then
    install -m 0600 "$preseed" "$SAVED_PRESEED.tmp"
    sync "$SAVED_PRESEED.tmp"
    mv "$SAVED_PRESEED.tmp" "$SAVED_PRESEED"
    bootfs_write rm -f "$BOOTFS/imbox.toml"
    log "preseed moved to $SAVED_PRESEED and removed from the boot partition"
fi
