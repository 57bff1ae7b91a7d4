#!/bin/sh
# make-certs.sh: a private CA and the certificates a Rampart estate needs,
# with the openssl command line (docs/security.md).
#
#   deploy/make-certs.sh DIR [--san DNS:rampart.example,IP:192.0.2.10]
#                            [--agent NAME]... [--admin NAME] [--days N]
#
# Writes into DIR (created 0700; keys 0600, certificates 0644):
#   ca.pem, ca.key            the CA (ECDSA P-256). ca.key also signs
#                             enrollments: point the server's tls.ca_key_file
#                             at it, or keep it offline and use --agent.
#   server.pem, server.key    the server (CN=rampart-server, SANs from --san;
#                             default DNS:localhost,IP:127.0.0.1,IP:::1)
#   agent-NAME.pem/.key       an agent client certificate (CN=NAME) for each
#                             --agent (the alternative to enrollment)
#   admin-NAME.pem/.key       an admin client certificate (CN=NAME) for
#                             --admin (rampartctl --cert/--key)
# An existing CA in DIR is reused, so the script can add certificates later.
set -eu

usage() {
  echo "usage: $0 DIR [--san SANS] [--agent NAME]... [--admin NAME] [--days N]" >&2
  exit 2
}

[ $# -ge 1 ] || usage
dir=$1
shift
san="DNS:localhost,IP:127.0.0.1,IP:::1"
agents=""
admin=""
days=825
while [ $# -gt 0 ]; do
  case "$1" in
    --san) [ $# -ge 2 ] || usage; san=$2; shift 2 ;;
    --agent) [ $# -ge 2 ] || usage; agents="$agents $2"; shift 2 ;;
    --admin) [ $# -ge 2 ] || usage; admin=$2; shift 2 ;;
    --days) [ $# -ge 2 ] || usage; days=$2; shift 2 ;;
    *) usage ;;
  esac
done
case "$days" in '' | *[!0-9]*) echo "$0: --days must be a number" >&2; exit 2 ;; esac
check_name() {
  case "$1" in
    '' | *[!A-Za-z0-9._-]*)
      echo "$0: name '$1' must be letters, digits, '.', '_' or '-'" >&2
      exit 2 ;;
  esac
}

umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 0600 "$1"; }

if [ ! -f "$dir/ca.pem" ] || [ ! -f "$dir/ca.key" ]; then
  key "$dir/ca.key"
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$((days * 2))" \
    -subj "/CN=Rampart CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.pem"
  chmod 0644 "$dir/ca.pem"
fi

# sign NAME CN EXTENSIONS
sign() {
  key "$dir/$1.key"
  openssl req -new -key "$dir/$1.key" -subj "/CN=$2" -out "$tmp/$1.csr"
  printf '%s\n' "$3" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -sha256 -days "$days" \
    -extfile "$tmp/$1.ext" -out "$dir/$1.pem" 2>/dev/null
  chmod 0644 "$dir/$1.pem"
}

sign server rampart-server "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san"

for a in $agents; do
  check_name "$a"
  sign "agent-$a" "$a" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
done

if [ -n "$admin" ]; then
  check_name "$admin"
  sign "admin-$admin" "$admin" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
fi

echo "certificates in $dir" >&2
