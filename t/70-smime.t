# S/MIME certificates of external senders: harvest from mail handed over
# and from mail a sync reads, lookup for clients, the admin page.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use MIME::Base64 qw(decode_base64);
use DmeTest;

plan tests => 36;

my $ca = services() . '/smime';
my $state = $ENV{DME_STATE} || "$ENV{DME_REPO}/t/state";

# A signed message made with openssl cms, as a mail program sends it.
sub signed {
    my (%a) = @_;
    my $in = "$ca/in.$$.txt";
    open my $fh, '>', $in or die $!;
    print $fh $a{body} || "Hello Alice,\nthis is signed.\n";
    close $fh;
    my $opts = $a{opaque} ? '-nodetach' : '';
    my $msg = `openssl cms -sign -text $opts -in $in -signer $ca/$a{who}.pem \\
               -inkey $ca/$a{who}.key -from '$a{from}' -to alice\@example.org \\
               -subject '$a{subject}' 2>/dev/null`;
    unlink $in;
    die "openssl cms failed" unless $msg;
    return $msg;
}

sub fingerprint {
    my ($who) = @_;
    my $fp = `openssl x509 -in $ca/$who.pem -noout -fingerprint -sha256`;
    $fp =~ s/.*=//; $fp =~ s/[:\s]//g;
    return lc $fp;
}

sub der_of {
    my ($who) = @_;
    return `openssl x509 -in $ca/$who.pem -outform DER`;
}

sub harvest {
    my ($msg) = @_;
    my $res = request(path => '/dme/smime/harvest', user => 'alice',
                      password => 'alice-secret', type => 'message/rfc822',
                      body => $msg);
    my @s = $res->content =~ /<signer reason="([^"]+)"(?: fingerprint="([0-9a-f]+)")?/g;
    return ($res, @s);
}

sub lookup {
    my (@addr) = @_;
    my $res = request(path => '/dme/certificates', user => 'alice',
                      password => 'alice-secret',
                      body => '<certificates xmlns="urn:dme:1"><addresses>'
                              . join(' ', @addr) . '</addresses></certificates>');
    my %st = $res->content =~ /<address value="([^"]+)" status="([^"]+)"/g;
    return ($res, \%st);
}

# alice uses the system (has a client): her own address is internal.
my (undef, $client) = enrol('alice', 'alice-secret');

# 1. An external signer is stored, once.
my ($res, $reason, $fp) = harvest(signed(who => 'bob', from => 'Bob <bob@external.test>',
                                         subject => 'Signed hello'));
is($res->code, 200, 'harvest answers 200');
is($reason, 'stored', 'an external signer is stored');
is($fp, fingerprint('bob'), 'the signer certificate, by fingerprint');
(undef, $reason) = harvest(signed(who => 'bob', from => 'bob@external.test',
                                  subject => 'Again'));
is($reason, 'already-stored', 'the same certificate again: already stored');

# 2. Lookup: case-insensitive, several at once, unknown address.
my $st;
($res, $st) = lookup('BOB@External.Test', 'nobody@nowhere.test');
is($st->{'BOB@External.Test'}, 'found',
   'bob has a certificate (the address comes back as sent)');
is($st->{'nobody@nowhere.test'}, 'none', 'an unknown address has none');
my ($b64) = $res->content =~ /<der>([^<]+)<\/der>/;
ok($b64 && decode_base64($b64) eq der_of('bob'), 'the DER served is the one signed with');

# 3. Nothing stored for: a tampered body, a sender the certificate does
# not name, a user of the system, opaque signed mail from an outsider is
# stored.
my $msg = signed(who => 'carol', from => 'carol@external.test', subject => 'T');
$msg =~ s/this is signed/this is changed/;
(undef, $reason) = harvest($msg);
is($reason, 'bad-signature', 'tampered body: bad signature');
(undef, $reason) = harvest(signed(who => 'carol', from => 'mallory@external.test',
                                  subject => 'Not me'));
is($reason, 'sender-mismatch', 'From not in the certificate: sender mismatch');
(undef, $reason) = harvest(signed(who => 'alice', from => 'alice@example.org',
                                  subject => 'Internal'));
is($reason, 'internal-sender', 'a user of the system: internal sender');
($res, $st) = lookup('carol@external.test', 'alice@example.org');
is($st->{'carol@external.test'}, 'none', 'carol was not stored');
is($st->{'alice@example.org'}, 'none', 'nor alice');
(undef, $reason) = harvest(signed(who => 'carol', from => 'carol@external.test',
                                  subject => 'Opaque', opaque => 1));
is($reason, 'stored', 'opaque signed-data is harvested too');
(undef, $reason) = harvest(signed(who => 'weak', from => 'walt@external.test',
                                  subject => 'Small key'));
is($reason, 'weak', 'a 1024-bit RSA signer is weak, not stored');
($res) = harvest("From: x\@y.test\nSubject: plain\n\nno signature\n");
like($res->content, qr/reason="no-signature"/, 'plain mail: no signature');

# 4. Harvest during a real sync: a signed mail in alice's INBOX.
my $imap = imap_as('alice', 'alice-secret');
$res = sync_req(client => $client);
my $key = parse_sync($res->decoded_content)->{key};
while (parse_sync($res->decoded_content)->{more} eq 'true') {
    $res = sync_req(client => $client, key => $key);
    $key = parse_sync($res->decoded_content)->{key};
}
my $dmsg = signed(who => 'dave', from => 'Dave <dave@external.test>',
                  subject => 'Signed via IMAP');
$dmsg =~ s/\r?\n/\r\n/g;
$imap->append_string('INBOX', $dmsg) or die $imap->LastError;
$res = sync_req(client => $client, key => $key);
my $s = parse_sync($res->decoded_content);
is($s->{adds}[0]{smime}, 'signed', 'the sync reports it signed');
($res, $st) = lookup('dave@external.test');
is($st->{'dave@external.test'}, 'found', 'and its signer was harvested by the sync');

# 5. The per-answer limit (DMESmimeMaxCertificates 2).
(undef, $reason) = harvest(signed(who => 'erin', from => 'erin@external.test',
                                  subject => 'E'));
($res, $st) = lookup('bob@external.test', 'dave@external.test',
                     'erin@external.test');
is($st->{'erin@external.test'}, 'limit', 'the third address meets the limit');
like($res->content, qr/limit="2"/, 'the answer states the limit');
is(scalar(() = $res->content =~ /<certificate /g), 2, 'two certificates at most');

# 6. An address whose only certificate expired answers "expired".
system('sqlite3', "$state/dme.sqlite",
       "UPDATE certificates SET not_after = 1000 WHERE fingerprint = '"
       . fingerprint('erin') . "'") == 0 or die 'sqlite3';
($res, $st) = lookup('erin@external.test');
is($st->{'erin@external.test'}, 'expired', 'expired only: expired');

# 7. The real samples, when the shared corpus is there.
my $corpus = $ENV{DME_SMIME_CORPUS} || "$ENV{DME_REPO}/../shared/corpus/smime";
SKIP: {
    skip "no S/MIME corpus at $corpus", 3 unless -f "$corpus/cc_TestCA.pem";
    local $/;
    open my $fh, '<', "$corpus/cc_alice.dsig.SHA256.multipart.eml" or die;
    (undef, $reason) = harvest(<$fh>);
    is($reason, 'stored', 'real detached sample: stored');
    open $fh, '<', "$corpus/cc_alice.dsig.SHA256.multipart.bad.eml" or die;
    (undef, $reason) = harvest(<$fh>);
    is($reason, 'bad-signature', 'real altered sample: bad signature');
    open $fh, '<', "$corpus/kde_smime-opaque-sign.mbox" or die;
    (undef, $reason) = harvest(<$fh>);
    is($reason, 'no-signer-cert', 'real sample without certificates');
}

# 8. The admin page: search, details, delete with the form token only.
my %admin = (user => $ENV{DME_PUSH_USER}, password => $ENV{DME_PUSH_PASSWORD});
$res = request(method => 'GET', path => '/dme/admin/certificates?q=external',
               %admin);
is($res->code, 200, 'admin list answers');
like($res->content, qr/bob\@external\.test/, 'and lists bob');
my $bobfp = fingerprint('bob');
$res = request(method => 'GET', path => "/dme/admin/certificates?fp=$bobfp",
               %admin);
my ($token) = $res->content =~ /name="csrf" value="([0-9a-f]{64})"/;
ok($token, 'details carry a form token');
$res = request(path => '/dme/admin/certificates', %admin,
               type => 'application/x-www-form-urlencoded',
               body => "fp=$bobfp&action=delete&csrf=" . ('0' x 64));
is($res->code, 403, 'a delete with a wrong token is refused');
($res, $st) = lookup('bob@external.test');
is($st->{'bob@external.test'}, 'found', 'and nothing was deleted');
$res = request(path => '/dme/admin/certificates', %admin,
               type => 'application/x-www-form-urlencoded',
               body => "fp=$bobfp&action=delete&csrf=$token");
is($res->code, 303, 'with the token it is deleted');
($res, $st) = lookup('bob@external.test');
is($st->{'bob@external.test'}, 'none', 'and gone');
$res = request(method => 'GET', user => 'alice', password => 'alice-secret',
               path => '/dme/admin/certificates');
ok($res->code == 401 || $res->code == 403,
   'a client user cannot open the admin page (' . $res->code . ')');
$imap->logout;

# 9. Where harvesting is off (DMESmimeHarvest Off under /dme-pw) nothing
# is stored: neither handed over nor read by a sync.
my $gina = signed(who => 'gina', from => 'gina@external.test', subject => 'G');
$res = request(path => '/dme-pw/smime/harvest', user => 'carol',
               password => 'carol-secret', type => 'message/rfc822',
               body => $gina);
is($res->code, 404, 'harvest off: the endpoint says so');
like($res->content, qr/code="no-harvest"/, 'with its code');
my (undef, $cc) = enrol('carol', 'carol-secret', '/dme-pw');
my $cimap = imap_as('carol', 'carol-secret');
$gina =~ s/\r?\n/\r\n/g;
$cimap->append_string('INBOX', $gina) or die $cimap->LastError;
$res = sync_req(client => $cc, base => '/dme-pw', user => 'carol',
                password => 'carol-secret');
is($res->code, 200, 'the sync itself works');
($res, $st) = lookup('gina@external.test');
is($st->{'gina@external.test'}, 'none', 'and stored nothing');
$cimap->logout;
