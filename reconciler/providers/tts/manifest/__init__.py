"""The Things Stack manifest kinds: Stack, Application, Device, Fleet and Gateway documents."""
