#!/bin/bash
# debian-12.sh OUT.qcow2 - build a Debian 12 (bookworm) QCOW2 v3 image that
# meets the Djinn image contract, from Debian's package archive, without
# root-only tricks on the host: no loop mount, no nbd, no chroot, no
# guestfish (issue 14, part 3; the team's research note on base images
# measured the method on this machine kind).
#
#   1. mmdebstrap --mode=unshare (a user namespace; as root too) bootstraps
#      systemd, udev, the cloud kernel (linux-image-cloud-amd64),
#      openssh-server and ca-certificates into an ext2 image (genext2fs),
#      with the contract applied by a customize hook (below);
#   2. the ext2 is grown and upgraded to ext4 as Debian's debvm-create does
#      (resize2fs, tune2fs -O ..., fsck.ext4);
#   3. the kernel and initrd are copied out with debugfs, and the disk is
#      written from files as tests/vm/build-image.sh does for the tiny
#      image: an MBR, a FAT16 boot partition with syslinux (mtools), the
#      ext4 root; qemu-img convert -c makes the compressed qcow2 v3.
#
# The contract (Djinn's Images page): root with an EMPTY password (passwd
# --delete), sshd_config: PermitRootLogin yes, PermitEmptyPasswords yes,
# PasswordAuthentication yes, UsePAM no, UseDNS no, AcceptEnv *, Subsystem
# sftp internal-sftp; /root/.ssh present; DHCP on QEMU's user network
# (systemd-networkd, en*); DNS: slirp's 10.0.2.3. apt inside uses the
# host's mirror configuration: the host's /etc/apt/sources.list and
# sources.list.d/*.list|*.sources are the image's sources (with
# --skip=cleanup/apt/lists off: run apt-get update first, as with
# Docker's debian images).
#
# SSH host keys are made at build time by openssh-server's postinst: one
# set per built image (a rebuild changes them). djinn-lua prints the host
# key's fingerprint and locks root to a per-build key after login, so a
# build never trusts them across images; generating them at each boot
# would cost an RSA key under TCG on every build.
#
# Env: CACHE=DIR  keep the downloaded .debs between runs (default: a
#                 "cache" directory beside OUT; CACHE= none)
#      ROOT_SIZE=4G  the root filesystem's size
#      COMPRESS=1    qemu-img convert -c (0: plain)
# A stamp (OUT.stamp: this script, the host's sources, the candidate
# versions of the kernel and openssh-server) makes a re-run print
# "cached" and do nothing.
# Build packages: mmdebstrap genext2fs uidmap e2fsprogs syslinux
# syslinux-common mtools dosfstools fdisk qemu-utils; as root, the missing
# ones are apt-installed, else named.
set -euo pipefail
export LC_ALL=C
prog=debian-12.sh
die() {
	printf '%s: %s\n' "$prog" "$*" >&2
	exit 1
}
[ $# -eq 1 ] || die "usage: $prog OUT.qcow2  (env CACHE=DIR ROOT_SIZE=4G COMPRESS=0|1)"
OUT=$1
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
OUTDIR=$(dirname "$OUT")
mkdir -p "$OUTDIR"
CACHE=${CACHE-$OUTDIR/cache}
ROOT_SIZE=${ROOT_SIZE:-4G}
COMPRESS=${COMPRESS:-1}
case $COMPRESS in 0 | 1) ;; *) die "COMPRESS=$COMPRESS: allowed: 0, 1" ;; esac
case $ROOT_SIZE in [0-9]*[GM]) ;; *) die "ROOT_SIZE=$ROOT_SIZE: allowed: a size such as 4G or 2048M" ;; esac
is_root() { [ "$(id -u)" = 0 ]; }

# -------------------------------------------------------- build packages --
missing=()
for p in mmdebstrap genext2fs uidmap e2fsprogs syslinux syslinux-common mtools dosfstools fdisk qemu-utils; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' || missing+=("$p")
done
if ((${#missing[@]})); then
	is_root || die "missing build packages: ${missing[*]}; install them with: apt-get install --no-install-recommends ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
fi

# ------------------------------------------------------ host apt sources --
sources=()
[ -s /etc/apt/sources.list ] && grep -q '^[[:space:]]*deb' /etc/apt/sources.list &&
	sources+=(/etc/apt/sources.list)
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && grep -q 'bookworm' "$f" && sources+=("$f")
done
((${#sources[@]})) || die "no apt sources for bookworm on this host (/etc/apt/sources.list, sources.list.d/*.list|*.sources): the image uses the host's mirror"

# ------------------------------------------------------------------ cache --
SELF_HASH=$(sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1)
cand() { apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }'; }
STAMP_TEXT=$(printf 'script %s\nsources %s\nkernel %s\nopenssh %s\nroot %s\ncompress %s\n' \
	"$SELF_HASH" "$(cat "${sources[@]}" | sha256sum | cut -d' ' -f1)" \
	"$(cand linux-image-cloud-amd64)" "$(cand openssh-server)" "$ROOT_SIZE" "$COMPRESS")
if [ -f "$OUT" ] && [ -f "$OUT.stamp" ] && [ "$(cat "$OUT.stamp")" = "$STAMP_TEXT" ]; then
	echo "cached $OUT"
	exit 0
fi

T0=$(date +%s.%N)
W=$(mktemp -d "${TMPDIR:-/tmp}/debian-12.XXXXXX")
chmod 755 "$W" # the namespace's root must reach it
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
step() { awk -v p="$prog" -v m="$1" -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%s: %s (%.1f s)\n", p, m, b - a }'; }

# ------------------------------------------------------- customize hook --
cat >"$W/customize.sh" <<'EOF'
#!/bin/sh
# mmdebstrap customize hook: $1 is the image's root, inside the namespace.
set -eu
R=$1
passwd --root "$R" --delete root
mkdir -p -m 700 "$R/root/.ssh"
# sshd_config starts with "Include /etc/ssh/sshd_config.d/*.conf" and the
# first value of a keyword wins: this drop-in overrides the main file.
cat >"$R/etc/ssh/sshd_config.d/00-djinn.conf" <<'CONF'
# The Djinn image contract: root logs in with an empty password.
PermitRootLogin yes
PermitEmptyPasswords yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
AcceptEnv *
Subsystem sftp internal-sftp
CONF
# The main file names the sftp-server binary; one Subsystem line only.
sed -i 's/^Subsystem[[:space:]]/#&/' "$R/etc/ssh/sshd_config"
echo djinn-debian >"$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 djinn-debian\n' >"$R/etc/hosts"
echo 'LABEL=djinnroot / ext4 defaults,errors=remount-ro 0 1' >"$R/etc/fstab"
mkdir -p "$R/etc/systemd/network"
printf '[Match]\nName=en*\n\n[Network]\nDHCP=yes\n' >"$R/etc/systemd/network/20-wired.network"
chroot "$R" systemctl enable systemd-networkd.service >/dev/null 2>&1
chroot "$R" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1
rm -f "$R/etc/resolv.conf"
echo 'nameserver 10.0.2.3' >"$R/etc/resolv.conf"
# Nothing holds the dpkg lock when a build starts.
for t in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer; do
	chroot "$R" systemctl mask "$t" >/dev/null 2>&1 || true
done
EOF
chmod 755 "$W/customize.sh"

cache_opts=()
if [ -n "$CACHE" ]; then
	mkdir -p "$CACHE"
	chmod 755 "$CACHE"
	cache_opts=(--skip=essential/unlink
		"--setup-hook=mkdir -p \"\$1\"/var/cache/apt/archives/"
		"--setup-hook=sync-in $CACHE /var/cache/apt/archives/"
		"--customize-hook=sync-out /var/cache/apt/archives $CACHE")
fi
# Before the kernel's postinst makes the initrd: virtio only (ext4 is
# built into the cloud kernel).
initrd_hook="--essential-hook=mkdir -p \"\$1/etc/initramfs-tools/conf.d\" && echo MODULES=list >\"\$1/etc/initramfs-tools/conf.d/djinn\" && printf 'virtio_pci\nvirtio_blk\nvirtio_net\n' >>\"\$1/etc/initramfs-tools/modules\""
mmdebstrap --quiet --mode=unshare --variant=minbase --format=ext2 \
	--include=systemd-sysv,udev,linux-image-cloud-amd64,openssh-server,ca-certificates \
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	"$initrd_hook" "--customize-hook=$W/customize.sh" "${cache_opts[@]}" \
	bookworm "$W/root.img" "${sources[@]}" >"$W/mmdebstrap.log" 2>&1 ||
	{ tail -20 "$W/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
step "bootstrapped"

# ext2 -> ext4 (debvm-create's way), grown to ROOT_SIZE.
truncate -s ">$ROOT_SIZE" "$W/root.img"
{
	/sbin/resize2fs -f "$W/root.img"
	/sbin/tune2fs -L djinnroot -c 0 -i 0 -O dir_index,dir_nlink,extents,extra_isize,flex_bg,has_journal,huge_file "$W/root.img"
	/sbin/resize2fs -b "$W/root.img" || true
	/sbin/fsck.ext4 -fDp "$W/root.img" || [ $? -le 1 ]
} >"$W/ext4.log" 2>&1 || { cat "$W/ext4.log" >&2; die "ext2 -> ext4 failed"; }
kver=$(/sbin/debugfs -R 'ls -l /boot' "$W/root.img" 2>/dev/null | awk '{ print $NF }' | sed -n 's/^vmlinuz-//p' | head -1)
[ -n "$kver" ] || die "no /boot/vmlinuz-* in the image"
/sbin/debugfs -R "dump /boot/vmlinuz-$kver $W/vmlinuz" "$W/root.img" >/dev/null 2>&1
/sbin/debugfs -R "dump /boot/initrd.img-$kver $W/initrd.img" "$W/root.img" >/dev/null 2>&1
[ -s "$W/vmlinuz" ] && [ -s "$W/initrd.img" ] || die "cannot copy the kernel $kver and its initrd out of the image"

# MBR | p1 FAT16 64 MiB (syslinux, vmlinuz, initrd) | p2 ext4 root.
cat >"$W/syslinux.cfg" <<EOF
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=/dev/vda2 rw console=ttyS0 quiet
EOF
BOOT_START=2048
BOOT_SECTORS=$((64 * 2048))
ROOT_START=$((BOOT_START + BOOT_SECTORS))
ROOT_SECTORS=$(($(stat -c %s "$W/root.img") / 512))
mkfs.vfat -F 16 -n BOOT -h "$BOOT_START" -C "$W/boot.img" $((64 * 1024)) >/dev/null
for f in vmlinuz initrd.img syslinux.cfg; do mcopy -i "$W/boot.img" "$W/$f" "::/$f"; done
syslinux --install "$W/boot.img"
truncate -s $(((ROOT_START + ROOT_SECTORS) * 512)) "$W/disk.raw"
printf 'label: dos\nstart=%d, size=%d, type=6, bootable\nstart=%d, size=%d, type=83\n' \
	"$BOOT_START" "$BOOT_SECTORS" "$ROOT_START" "$ROOT_SECTORS" | sfdisk -q "$W/disk.raw"
mbr=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$mbr" ] || die "$mbr not found (package syslinux-common)"
dd if="$mbr" of="$W/disk.raw" bs=440 count=1 conv=notrunc status=none
dd if="$W/boot.img" of="$W/disk.raw" bs=512 seek="$BOOT_START" conv=notrunc,sparse status=none
dd if="$W/root.img" of="$W/disk.raw" bs=1M seek=$((ROOT_START * 512)) oflag=seek_bytes conv=notrunc,sparse status=none
step "disk written (kernel $kver)"
c=()
[ "$COMPRESS" = 1 ] && c=(-c)
qemu-img convert -f raw -O qcow2 -o compat=1.1 "${c[@]}" "$W/disk.raw" "$W/out.qcow2"
mv -f "$W/out.qcow2" "$OUT"
printf '%s\n' "$STAMP_TEXT" >"$OUT.stamp"
step "wrote $OUT ($(stat -c %s "$OUT") bytes)"
