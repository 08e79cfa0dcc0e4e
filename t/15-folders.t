# Folder names: UTF-8 names reach IMAP as modified UTF-7, INBOX is one
# folder in any case, query strings use form encoding.
use strict;
use warnings;
use utf8;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use Encode qw(encode);
use URI::Escape qw(uri_escape_utf8);
use DmeTest;

plan tests => 10;
binmode(Test::More->builder->$_, ":encoding(UTF-8)") for qw(output failure_output);

my $imap = imap_as('alice', 'alice-secret');
my ($res, $client) = enrol('alice', 'alice-secret');

# Mail::IMAPClient takes mailbox names as given: send the encoded forms.
my %folders = ('Entwürfe' => 'Entw&APw-rfe', '草稿' => '&g0l6Pw-',
               'A&B' => 'A&-B', 'My Folder' => 'My Folder');
for my $name (sort keys %folders) {
    my $imapname = $folders{$name} . $$;
    $imap->create($imapname) or die $imap->LastError;
    append_mail($imap, $imapname, "In $name");
    my $xmlname = $name . $$;
    $xmlname =~ s/&/&amp;/g;
    $res = request(path => '/dme/sync', user => 'alice',
                   password => 'alice-secret',
                   body => encode('UTF-8', '<sync xmlns="urn:dme:1"><client>'
                          . $client . "</client><folder>$xmlname</folder>"
                          . '<type>import</type></sync>'));
    my $s = parse_sync($res->decoded_content);
    is(join(',', map { $_->{subject} } @{$s->{adds}}), "In $name",
       "folder '$name' syncs");
}

# A '+' in the query is a space, as in any form encoding.
$imap->select("My Folder$$");
my ($uid) = @{$imap->messages};
my $uv = $imap->uidvalidity("My Folder$$");
$res = request(method => 'GET', user => 'alice', password => 'alice-secret',
               path => "/dme/message?client=$client&folder=My+Folder$$"
                       . "&ref=$uv:$uid");
is($res->code, 200, "'+' in the query is a space");
$res = request(method => 'GET', user => 'alice', password => 'alice-secret',
               path => "/dme/message?client=$client&folder=Nope$$&ref=1:1");
like($res->decoded_content, qr/code="no-such-folder"/,
     'download from a missing folder says so');
$res = request(method => 'GET', user => 'alice', password => 'alice-secret',
               path => "/dme/message?client=$client&folder=INBOX&folder=X"
                       . "&ref=1:1");
is($res->code, 400, 'a repeated query parameter is refused');

# INBOX in any case is the one INBOX.
$res = sync_req(client => $client, folder => 'inbox');
is(parse_sync($res->decoded_content)->{folder}, 'INBOX',
   'inbox is INBOX');
$res = sync_req(client => $client, folder => 'Inbox', key => 1);
is($res->code, 200, 'and shares its sync state');

# A folder name that is not valid UTF-8 is refused, not guessed.
$res = request(path => '/dme/sync', user => 'alice',
               password => 'alice-secret',
               body => "<sync xmlns=\"urn:dme:1\"><client>$client</client>"
                       . "<folder>bad\xff</folder><type>import</type></sync>");
is($res->code, 400, 'invalid UTF-8 in a folder name: 400');
$imap->logout;
