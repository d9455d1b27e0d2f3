"""Control from the phone (issue 17): the owner's Telegram chats ask the engine how it is and
pause, resume, halt it or lower its tier, each change confirmed by a tap and audited."""
