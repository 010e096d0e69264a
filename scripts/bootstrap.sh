# Sourced by ./cdc and ./test: makes sure a virtual environment with the project (and extras) is ready.
# Creates .venv (or $CDC_VENV) with Python ≥ 3.11 on first use, and reinstalls when pyproject.toml changes.

cdc_find_python() {
    local py
    for py in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        if [ -n "$py" ] && command -v "$py" >/dev/null 2>&1 \
            && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$py"
            return 0
        fi
    done
    echo "Error: cdc_core needs Python 3.11 or newer — install it, or point PYTHON=/path/to/python3.11 at it" >&2
    return 2
}

cdc_extras_cover() {  # $1 installed extras, $2 wanted extras (comma-separated): each wanted one is installed
    local want
    for want in ${2//,/ }; do
        case ",$1," in
            *",$want,"*) ;;
            *,all,*) [ "$want" != test ] || return 1 ;;  # "all" is every feature extra, not the test tools
            *) return 1 ;;
        esac
    done
}

cdc_ensure_venv() {  # $1: extras to install ("tui,notebooks" for ./cdc, "all,test" for ./test)
    local extras="${1:-}" py stamp spec line
    CDC_VENV="${CDC_VENV:-.venv}"
    stamp="$(cksum < pyproject.toml | cut -d' ' -f1)"
    if [ -f "$CDC_VENV/.cdc-installed" ]; then  # one line per install: "<pyproject checksum>-<extras>"
        while IFS= read -r line; do
            [ "${line%%-*}" = "$stamp" ] && cdc_extras_cover "${line#*-}" "$extras" && return 0
        done < "$CDC_VENV/.cdc-installed"
    fi
    py="$(cdc_find_python)" || exit 2
    if [ ! -x "$CDC_VENV/bin/python" ]; then
        echo "Setting up $CDC_VENV with $("$py" --version) (first run only; takes a minute or two)…" >&2
        "$py" -m venv "$CDC_VENV" || exit 2
    fi
    spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    echo "Installing cdc_core and its dependencies into $CDC_VENV…" >&2
    "$CDC_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --editable "$spec" || exit 2
    echo "$stamp-$extras" >> "$CDC_VENV/.cdc-installed"
}
