// The files of what a person drops or picks: a folder gives every file in it and in the
// folders inside it, in name order ("2 intro" before "10 outro"); hidden files (a name that
// starts with a dot, as `.DS_Store`) are left out.

/** The files of a drop. Called during the drop event: its items are gone once it returns. */
export function droppedFiles(transfer: DataTransfer): Promise<File[]> {
  const files: File[] = [];
  const folders: FileSystemDirectoryEntry[] = [];
  for (const item of Array.from(transfer.items)) {
    if (item.kind !== "file") continue;
    const entry = item.webkitGetAsEntry();
    if (entry?.isDirectory) folders.push(entry as FileSystemDirectoryEntry);
    else {
      const file = item.getAsFile();
      if (file) files.push(file);
    }
  }
  return Promise.all(folders.map(filesIn)).then((inside) => [
    ...files.filter((file) => !hidden(file.name)),
    ...ordered(inside.flat()),
  ]);
}

/** The files a folder chooser gave (each with its path in the folder). */
export function pickedFiles(list: FileList): File[] {
  const path = (file: File) => file.webkitRelativePath || file.name;
  return ordered(Array.from(list).filter((file) => !path(file).split("/").some(hidden)));
}

function hidden(name: string): boolean {
  return name.startsWith(".");
}

function ordered(files: File[]): File[] {
  const path = (file: File) => file.webkitRelativePath || file.name;
  return files.sort((a, b) => path(a).localeCompare(path(b), undefined, { numeric: true }));
}

/** Every file in `folder` and the folders inside it, hidden ones left out. */
async function filesIn(folder: FileSystemDirectoryEntry): Promise<File[]> {
  const found: File[] = [];
  for (const entry of await entriesOf(folder)) {
    if (hidden(entry.name)) continue;
    if (entry.isDirectory) found.push(...(await filesIn(entry as FileSystemDirectoryEntry)));
    else found.push(await new Promise<File>((done, fail) => (entry as FileSystemFileEntry).file(done, fail)));
  }
  return found;
}

/** A folder's entries: a reader gives them a hundred or so at a time, until it gives none. */
async function entriesOf(folder: FileSystemDirectoryEntry): Promise<FileSystemEntry[]> {
  const reader = folder.createReader();
  const all: FileSystemEntry[] = [];
  for (;;) {
    const some = await new Promise<FileSystemEntry[]>((done, fail) => reader.readEntries(done, fail));
    if (some.length === 0) return all;
    all.push(...some);
  }
}
