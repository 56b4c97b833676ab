/* pause.c: when to look for paused senders to resume (pause.h). */
#include "pause.h"

void pause_note_paused(struct pause_book *b)
{
    b->npaused++;
}

void pause_note_resumed(struct pause_book *b)
{
    if (b->npaused > 0) {
        b->npaused--;
    }
}

int pause_below_mark(size_t queued, size_t soft, int backlog)
{
    return queued < soft / 2 && !backlog;
}

void pause_note_drained(struct pause_book *b)
{
    b->drained = 1;
}

int pause_rescan_due(struct pause_book *b)
{
    int due = b->drained && b->npaused > 0;
    b->drained = 0;
    return due;
}
