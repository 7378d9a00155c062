bench memory --model resnet18 --shape cifar --num-classes 10 --batch 32 --optimizer sgd,nesterov,adam --steps 1 --threads 2 --csv results/paper/fig3/bench/resnet152-optim.csv
