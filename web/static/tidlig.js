// Small conveniences only: every page works without this script.
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-print]")) {
    button.addEventListener("click", () => window.print());
  }
  // Show the reason code only for a dismissal and the date only for a deferral.
  const radios = document.querySelectorAll('input[name="decision"]');
  const dependent = document.querySelectorAll("[data-show-for]");
  const update = () => {
    const chosen = document.querySelector('input[name="decision"]:checked');
    for (const group of dependent) {
      group.hidden = !chosen || group.dataset.showFor !== chosen.value;
    }
  };
  if (radios.length) {
    radios.forEach((radio) => radio.addEventListener("change", update));
    update();
  }
});
