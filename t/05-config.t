# Configuration errors stop the server at startup with a message that
# names the directive.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use File::Temp qw(tempdir);

my $repo = $ENV{DME_REPO} || "$FindBin::Bin/..";
my $so = "$repo/mod_dme/.libs/mod_dme.so";
my $mods = '/usr/lib/apache2/modules';

# [directive lines, the name the error must carry, what]
my @cases = (
    ['DMESyncWindow 10x', 'DMESyncWindow', 'a number with junk'],
    ['DMESyncWindow 0', 'DMESyncWindow', 'a number out of range'],
    ['DMEMailServer http://127.0.0.1:143', 'DMEMailServer', 'a non-IMAP URL'],
    ['DMEMailAccess sometimes', 'DMEMailAccess', 'an unknown mode'],
    ['DMEPrecacheMaxAge soon', 'DMEPrecacheMaxAge', 'a duration that is not one'],
    ['DMETechnicalPasswordFile /nonexistent/pw', 'DMETechnicalPasswordFile',
     'a password file that is not there'],
    ['DMESmimeCAFile /nonexistent/ca.pem', 'DMESmimeCAFile', 'a missing CA file'],
    ["DMETechnicalUser dmemaster\nDMEPrecache On", 'DMETechnicalWarningAccepted',
     'pre-caching with the technical user, warning not accepted'],
    ["DMEPrecache On\nDMETechnicalWarningAccepted On\nDMEMemcached --BOGUS=1",
     'DMEMemcached', 'a bad memcached configuration'],
    ["DMEPrecache On\nDMETechnicalWarningAccepted On\nDMEHeartbeatMin 60\n"
     . "DMEHeartbeatMax 30", 'DMEHeartbeatMin', 'heartbeat bounds the wrong way'],
);

plan tests => 2 * @cases + 2;

my $dir = tempdir(CLEANUP => 1);
chmod 0755, $dir;

sub start_with {
    my ($lines) = @_;
    chomp(my $port = `$repo/scripts/services.sh free-port`);
    open my $fh, '>', "$dir/httpd.conf" or die $!;
    print $fh <<"CONF";
ServerRoot $dir
PidFile $dir/httpd.pid
ErrorLog $dir/error.log
Listen 127.0.0.1:$port
ServerName 127.0.0.1
User nobody
Group nogroup
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule dbd_module $mods/mod_dbd.so
LoadModule dme_module $so
$lines
CONF
    close $fh;
    unlink "$dir/error.log";
    my $out = `/usr/sbin/apache2 -f $dir/httpd.conf -k start 2>&1`;
    my $rc = $? >> 8;
    sleep 0.3 if !$rc;
    my $log = '';
    if (open my $lf, '<', "$dir/error.log") { local $/; $log = <$lf> }
    system("/usr/sbin/apache2 -f $dir/httpd.conf -k stop >/dev/null 2>&1")
        if -f "$dir/httpd.pid";
    for (1 .. 20) { last unless -f "$dir/httpd.pid"; select(undef, undef, undef, 0.1) }
    return ($rc, $out . $log);
}

for my $c (@cases) {
    my ($rc, $text) = start_with($c->[0]);
    ok($rc != 0 || $text =~ /AH00016|EMERG|emerg/i, "$c->[2]: startup fails");
    like($text, qr/\Q$c->[1]\E/, "$c->[2]: the message names $c->[1]");
}

# The same settings with the warning accepted start fine.
my ($rc, $text) = start_with("DMETechnicalUser dmemaster\nDMEPrecache On\n"
                             . "DMETechnicalWarningAccepted On");
is($rc, 0, 'accepted warning: the server starts') or diag $text;
unlike($text, qr/DME\d+/, 'and logs no error of ours');
